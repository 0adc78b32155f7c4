"""What the shared contract cannot see of the nats:// broker: the URL, competing consumers,
server-side deduplication, dead letters after nacks, and surviving a server restart.

The server tests use the NATS at 127.0.0.1:4222 (skipped, or failed in CI, when it is absent), each
with its own prefix, and delete their streams afterwards. The restart test starts its own
nats-server on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from slipstream.brokers import BrokerSettings, DeadLetter, Delivery, Outgoing, create_broker
from slipstream.brokers import nats as nats_broker
from slipstream.brokers.nats import NatsBroker
from slipstream.brokers.nats_resources import Options, Topic, parse_url
from slipstream.bundles import count_of, pack
from slipstream.config import Settings
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge
from tests import helpers
from tests.services import NatsServer, free_port, nats_server, port_open, service_missing

SERVER = "nats://127.0.0.1:4222"
DATASET = "flights"
# Streams the contract suite leaves behind (prefix t<token>), swept once 10 minutes old: no
# contract test runs that long, so a running suite (here or in another checkout) keeps its own.
CONTRACT_LEFTOVER = re.compile(r"^T[0-9A-F]{12}_")


def settings(url: str, **values: Any) -> Settings:
    values = {"lease_seconds": 1, "max_deliveries": 3, **values}
    return helpers.settings(broker_url=url, **values)


def messages(count: int, prefix: str = "k") -> list[Outgoing]:
    return [Outgoing(f"{prefix}{i}", f"payload {i}".encode()) for i in range(count)]


async def pull_until(broker: NatsBroker, count: int, within: float = 15) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived"
        got += await broker.pull(DATASET, 10, wait=0.5)
    return got


# --- without a server ---------------------------------------------------------------------


def test_url_gives_servers_credentials_and_options() -> None:
    server, options = parse_url("nats://bob:s%40cret@h1:4222,h2?prefix=stage&replicas=3")
    assert server.servers == ["nats://h1:4222", "nats://h2"]
    assert server.credentials == {"user": "bob", "password": "s@cret"}
    assert options == Options(prefix="stage", replicas=3, max_age=None)
    assert parse_url("nats://tok@h1:4222")[0].credentials == {"token": "tok"}
    assert parse_url("nats://h1")[0].credentials == {}
    assert parse_url("nats://h1?max_age=3600")[1] == Options(max_age=3600.0)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("nats://", "expected nats://host"),
        ("nats://h1/path", "expected nats://host"),
        ("nats://h1?prefix=Big", "option prefix='Big' must be up to 32 of a-z"),
        ("nats://h1?prefix=a.b", "option prefix='a.b'"),
        ("nats://h1?replica=3", "unknown option 'replica'; the options are prefix, replicas"),
        ("nats://h1?replicas=three", "option replicas='three' must be a whole number"),
        ("nats://h1?replicas=0", "option replicas='0' should be greater than or equal to 1"),
        ("nats://h1?max_age=nan", "option max_age='nan' must be a finite number"),
    ],
)
def test_a_bad_url_names_the_variable(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="SLIPSTREAM_BROKER_URL") as info:
        parse_url(url)
    assert complaint in str(info.value)


def test_names_follow_prefix_and_dataset() -> None:
    topic = Topic.of("slipstream", "flights")
    assert (topic.stream, topic.subject, topic.dlq, topic.consumer) == (
        "SLIPSTREAM_FLIGHTS",
        "slipstream.flights",
        "SLIPSTREAM_FLIGHTS_DLQ",
        "slipstream_worker",
    )


async def test_an_unreachable_server_is_unavailable_not_a_hang() -> None:
    broker = NatsBroker.from_url(
        f"nats://127.0.0.1:{free_port()}", BrokerSettings.of(settings("nats://x"))
    )
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await broker.open([DATASET])
    assert time.monotonic() - start < 10
    await broker.close()


# --- against the server -------------------------------------------------------------------


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    if not port_open("127.0.0.1", 4222):
        service_missing("nats", "nothing listens on 127.0.0.1:4222")
    name = f"u{uuid.uuid4().hex[:12]}"
    yield name
    nc = await nats.connect(SERVER)
    try:
        js = nc.jetstream()
        topic = Topic.of(name, DATASET)
        doomed = {topic.stream, topic.dlq}
        stale, offset = datetime.now(UTC) - timedelta(minutes=10), 0
        while page := await js.streams_info(offset=offset):  # pages of up to 256
            offset += len(page)
            for info in page:
                created, stream = info.created, info.config.name or ""
                if CONTRACT_LEFTOVER.match(stream) and created and created < stale:
                    doomed.add(stream)
        for stream in doomed:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await nc.close()


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[NatsBroker]:
    instance = create_broker(settings(f"{SERVER}?prefix={prefix}"))
    assert isinstance(instance, NatsBroker)
    await instance.open([DATASET])
    yield instance
    await instance.close()


async def test_two_brokers_on_one_prefix_are_competing_consumers(
    prefix: str, broker: NatsBroker
) -> None:
    other = create_broker(settings(f"{SERVER}?prefix={prefix}", lease_seconds=30))
    await other.open([DATASET])  # updates the shared consumer's lease to 30 s
    try:
        await broker.publish(DATASET, messages(50))
        first = await broker.pull(DATASET, 20, wait=5)
        second = await other.pull(DATASET, 20, wait=5)  # leased elsewhere: never the same ones
        assert first
        assert second
        assert not {d.key for d in first} & {d.key for d in second}
        seen = Counter(d.key for d in first + second)
        await broker.ack(DATASET, first)
        await other.ack(DATASET, second)
        while sum(seen.values()) < 50:
            pullers = (broker.pull(DATASET, 7, wait=1), other.pull(DATASET, 7, wait=1))
            for owner, batch in zip((broker, other), await asyncio.gather(*pullers), strict=True):
                seen.update(d.key for d in batch)
                await owner.ack(DATASET, batch)
        assert set(seen) == {f"k{i}" for i in range(50)}
        assert max(seen.values()) == 1
        assert await broker.pull(DATASET, 10, wait=0.5) == []
    finally:
        await other.close()


async def test_a_repeated_key_within_the_window_is_stored_once(broker: NatsBroker) -> None:
    await broker.publish(DATASET, [Outgoing("same", b"first"), Outgoing("other", b"x")])
    await broker.publish(DATASET, [Outgoing("same", b"second")])  # a retried request, say
    await broker.publish(DATASET, [Outgoing("again", b"1"), Outgoing("again", b"2")])
    assert await broker.backlog(DATASET) == 3
    got = await pull_until(broker, 3)
    assert sorted((d.key, d.data) for d in got) == [
        ("again", b"1"),
        ("other", b"x"),
        ("same", b"first"),
    ]
    await broker.ack(DATASET, got)
    assert await broker.pull(DATASET, 10, wait=1.5) == []  # nothing left, even past the lease


async def test_a_message_nacked_max_deliveries_times_is_a_dead_letter(broker: NatsBroker) -> None:
    await broker.publish(DATASET, [Outgoing("poison", b"bad", {"source": "test"})])
    for count in (1, 2, 3):
        [delivery] = await pull_until(broker, 1)
        assert delivery.delivery_count == count
        await broker.nack(DATASET, [delivery], delay=0)
    assert await broker.pull(DATASET, 10, wait=1) == []  # the 4th delivery is buried instead
    [dead] = await broker.dead_letters(DATASET, 10, None)
    assert (dead.key, dead.data, dead.deliveries) == ("poison", b"bad", 3)
    assert "delivered 3 times without an ack" in dead.reason
    assert await broker.backlog(DATASET) == 0
    # Replayed, it comes back whole: key, attributes and its original publish time.
    assert await broker.replay_dead_letters(DATASET, None) == 1
    [again] = await pull_until(broker, 1)
    assert (again.key, again.data, again.attributes, again.delivery_count) == (
        "poison",
        b"bad",
        {"source": "test"},
        1,
    )
    assert again.published_at == dead.published_at
    await broker.ack(DATASET, [again])
    assert await broker.dead_letters(DATASET, 10, None) == []


async def test_create_resources_off_names_what_is_missing(prefix: str) -> None:
    broker = create_broker(settings(f"{SERVER}?prefix={prefix}", create_resources=False))
    with pytest.raises(ConfigError, match="SLIPSTREAM_CREATE_RESOURCES is off"):
        await broker.open([DATASET])
    await broker.close()


async def test_a_handle_from_elsewhere_is_refused(broker: NatsBroker) -> None:
    forged = Delivery("_INBOX.x", "k", b"", 1, 0.0)
    with pytest.raises(ValueError, match="not a NATS delivery handle"):
        await broker.ack(DATASET, [forged])


# --- a server of our own, restarted -------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


async def test_the_message_size_limit_is_the_servers_and_publish_keeps_to_it(
    tmp_path: Path,
) -> None:
    """The capabilities say the server's max_payload once connected, and publish checks it."""
    with nats_server(tmp_path, "max_payload: 65536\n") as server:
        broker = create_broker(settings(server.url))
        assert broker.capabilities.max_message_bytes is None  # not known before connecting
        await broker.open([DATASET])
        try:
            assert broker.capabilities.max_message_bytes == 65536
            with pytest.raises(MessageTooLarge, match="accepts 65536 at most"):
                await broker.publish(DATASET, [Outgoing("big", b"x" * 70_000)])
            await broker.publish(DATASET, [Outgoing("fits", b"x" * 60_000)])
        finally:
            await broker.close()


async def test_bundles_fit_the_server_and_a_worn_out_one_is_kept_whole(tmp_path: Path) -> None:
    """Bundles made for the server's max_payload publish, the backlog is counted in events, and a
    bundle buried for its deliveries keeps every byte (room is left for the letter's details)."""
    with nats_server(tmp_path, "max_payload: 65536\n") as server:
        broker = NatsBroker.from_url(server.url, BrokerSettings(max_deliveries=1))
        await broker.open([DATASET])
        try:
            shared = {"dataset": DATASET, "request_id": "r" * 200}
            events = [
                Outgoing(f"ev-{i}", b'{"id": "ev-%d", "pad": "%s"}' % (i, b"x" * 150), shared)
                for i in range(2000)
            ]
            bundles = pack(events, broker.capabilities.max_message_bytes)
            assert 5 < len(bundles) < 20
            await broker.publish(DATASET, bundles)
            assert await broker.backlog(DATASET) == 2000
            first = (await pull_until(broker, 1))[0]
            await broker.nack(DATASET, [first], delay=0)
            letters: list[DeadLetter] = []
            deadline = time.monotonic() + 15
            while not letters:  # its second delivery is past max_deliveries: buried
                assert time.monotonic() < deadline, "the bundle was never buried"
                await broker.pull(DATASET, 1, wait=0.2)
                letters = await broker.dead_letters(DATASET, 10, None)
            [letter] = letters
            assert letter.truncated is None
            assert (letter.key, letter.data) == (first.key, first.data)
            assert broker.buried(DATASET) == count_of(first.attributes)
        finally:
            await broker.close()


async def test_a_server_restart_loses_nothing_acked_and_the_broker_reconnects(
    own_server: NatsServer,
) -> None:
    start, stop = own_server.start, own_server.stop
    broker = create_broker(settings(own_server.url, lease_seconds=30))
    await broker.open([DATASET])
    try:
        await broker.publish(DATASET, messages(3))
        stop()
        deadline = time.monotonic() + 15
        while True:  # until the client has seen the connection go
            assert time.monotonic() < deadline, "the broker never noticed the server had gone"
            try:
                await asyncio.wait_for(broker.ping(), 0.5)
            except BackendUnavailable:
                break
            except TimeoutError:
                pass
        with pytest.raises(BackendUnavailable, match="disconnected"):
            await broker.publish(DATASET, messages(1, prefix="lost"))
        start()

        async def published() -> bool:
            try:
                await broker.publish(DATASET, messages(1, prefix="after"))
            except BackendUnavailable:
                await asyncio.sleep(0.2)
                return False
            return True

        deadline = time.monotonic() + 15
        while not await published():  # reconnected by the driver on its own
            assert time.monotonic() < deadline, "no reconnect within 15 s"
        got: list[Delivery] = []
        while len(got) < 4:
            assert time.monotonic() < deadline + 15
            got += await broker.pull(DATASET, 10, wait=1)
        assert sorted(d.key for d in got) == ["after0", "k0", "k1", "k2"]
    finally:
        await broker.close()


async def test_exchanges_in_flight_fail_as_soon_as_the_connection_is_lost(
    own_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish waiting for its PubAck and a ping waiting for its answer when the server dies
    fail at once: with reply timeouts of five minutes, waiting for them would fail the test."""
    monkeypatch.setattr(nats_broker, "REPLY_TIMEOUT", 300.0)
    monkeypatch.setattr(nats_broker, "REQUEST_TIMEOUT", 300.0)
    broker = create_broker(settings(own_server.url))
    assert isinstance(broker, NatsBroker)
    await broker.open([DATASET])
    try:
        client = broker._nc  # its counters tell when the requests are on the wire
        assert client is not None
        sent = client.stats["out_msgs"]
        own_server.pause()  # from now on nothing answers
        publishing = asyncio.create_task(broker.publish(DATASET, messages(1)))
        pinging = asyncio.create_task(broker.ping())
        deadline = time.monotonic() + 10
        while client.stats["out_msgs"] < sent + 2:
            assert time.monotonic() < deadline, "the requests never left"
            await asyncio.sleep(0.01)
        own_server.stop()
        for request in (publishing, pinging):
            with pytest.raises(BackendUnavailable, match="connection lost"):
                await asyncio.wait_for(request, 30)
    finally:
        await broker.close()
