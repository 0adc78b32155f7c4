"""The nats:// broker at the edges of what a message can be: at the server's size limit with its
headers, published by another client without headers (or with headers of its own), and dead
letters that must fit, be read in either format, and never hold up a pull.

Against the NATS at 127.0.0.1:4222 (skipped, or failed in CI, when absent), each test with its own
prefix, its streams deleted afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import nats
import orjson
import pytest

from slipstream.brokers import Delivery, Outgoing, create_broker
from slipstream.brokers.nats import NatsBroker
from slipstream.brokers.nats_resources import Topic
from slipstream.errors import MessageTooLarge
from tests import helpers
from tests.contracts.backends import drop_nats_streams
from tests.services import port_open, service_missing

SERVER = "nats://127.0.0.1:4222"
DATASET = "flights"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    if not port_open("127.0.0.1", 4222):
        service_missing("nats", "nothing listens on 127.0.0.1:4222")
    name = f"m{uuid.uuid4().hex[:12]}"
    yield name
    await drop_nats_streams(name)


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[NatsBroker]:
    settings = helpers.settings(
        broker_url=f"{SERVER}?prefix={prefix}",
        lease_seconds=1,
        max_deliveries=3,
    )
    instance = create_broker(settings)
    assert isinstance(instance, NatsBroker)
    await instance.open([DATASET])
    yield instance
    await instance.close()


async def publish_raw(
    prefix: str, bodies: list[bytes], headers: dict[str, str] | None = None, dlq: bool = False
) -> int:
    """Publish with nats-py, as a producer that skips Slipstream; return the max_payload."""
    topic = Topic.of(prefix, DATASET)
    connection = await nats.connect(SERVER)
    try:
        jetstream = connection.jetstream()
        for body in bodies:
            subject = topic.dlq_subject if dlq else topic.subject
            await jetstream.publish(subject, body, headers=headers)
        return connection.max_payload
    finally:
        await connection.close()


async def pull(broker: NatsBroker, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 15
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived"
        got += await broker.pull(DATASET, 10, wait=0.5)
    return got


async def test_a_message_over_the_limit_with_its_headers_is_refused_before_sending(
    broker: NatsBroker,
) -> None:
    """The server counts headers too, and cuts the connection of a client that sends more: the
    broker refuses the batch (HTTP 413) and stays connected."""
    limit = await publish_raw("unused", [])
    small, edge = Outgoing("small", b"{}"), Outgoing("edge", b"x" * (limit - 10))
    with pytest.raises(MessageTooLarge, match=r"'edge' takes \d+ bytes .* accepts 1048576"):
        await broker.publish(DATASET, [small, edge])
    assert await broker.backlog(DATASET) == 0  # nothing of the batch was sent
    await broker.publish(DATASET, [small])
    assert [d.key for d in await pull(broker, 1)] == ["small"]


async def test_a_worn_message_at_the_size_edge_is_buried_with_a_reference(
    prefix: str, broker: NatsBroker
) -> None:
    """A message of exactly max_payload cannot travel with a letter's headers: the letter keeps
    the head of its data, marked truncated with the whole's size, digest and stream sequence."""
    limit = await publish_raw("unused", [])
    body = b'{"blob": "' + b"y" * (limit - 12) + b'"}'
    await publish_raw(prefix, [body])
    for count in (1, 2, 3):
        [delivery] = await pull(broker, 1)
        assert delivery.delivery_count == count
        await broker.nack(DATASET, [delivery], delay=0)
    assert await broker.pull(DATASET, 10, wait=1) == []  # buried by this pull
    assert broker.buried(DATASET) == 1

    [dead] = await broker.dead_letters(DATASET, 10, None)
    assert dead.key == delivery.key
    assert dead.reason.startswith("delivered 3 times without an ack")
    assert dead.truncated is not None
    assert dead.truncated.size == len(body) == limit
    assert dead.truncated.sha256 == hashlib.sha256(body).hexdigest()
    assert dead.truncated.source == f"{Topic.of(prefix, DATASET).stream}:1"
    assert body.startswith(dead.data)
    assert len(dead.data) > limit - 2000
    # Replayed, the head comes back under the same key (the worker quarantines it: cut JSON).
    assert await broker.replay_dead_letters(DATASET, None) == 1
    [again] = await pull(broker, 1)
    assert (again.key, again.data) == (dead.key, dead.data)


async def test_letters_written_before_the_header_format_are_read_and_replayed(
    prefix: str, broker: NatsBroker
) -> None:
    old = {
        "key": "k-old",
        "data": base64.b64encode(b'{"old": true}').decode(),
        "deliveries": 5,
        "reason": "store refused it: old reason",
        "published_at": 1_700_000_000.5,
        "attributes": {"request_id": "r-1"},
    }
    await publish_raw(prefix, [orjson.dumps(old)], dlq=True)
    [dead] = await broker.dead_letters(DATASET, 10, None)
    assert (dead.key, dead.data, dead.reason, dead.deliveries, dead.truncated) == (
        "k-old",
        b'{"old": true}',
        "store refused it: old reason",
        5,
        None,
    )
    assert await broker.replay_dead_letters(DATASET, [dead.id]) == 1
    [again] = await pull(broker, 1)
    assert (again.key, again.data, again.attributes) == (
        "k-old",
        b'{"old": true}',
        {"request_id": "r-1"},
    )
    assert again.published_at == 1_700_000_000.5


async def test_a_pull_goes_on_when_a_worn_message_cannot_be_buried(
    prefix: str, broker: NatsBroker
) -> None:
    """With the dead-letter stream gone, burying fails: the pull still hands out the others, and
    the worn message is buried once the stream is back."""
    await broker.publish(DATASET, [Outgoing("worn", b"1")])
    for _ in range(3):
        [delivery] = await pull(broker, 1)
        await broker.nack(DATASET, [delivery], delay=0)
    connection = await nats.connect(SERVER)
    try:
        await connection.jetstream().delete_stream(Topic.of(prefix, DATASET).dlq)
    finally:
        await connection.close()
    await broker.publish(DATASET, [Outgoing("fresh", b"2")])
    got = await pull(broker, 1)
    assert [d.key for d in got] == ["fresh"]
    assert broker.buried(DATASET) == 0
    await broker.ack(DATASET, got)

    await broker.open([DATASET])  # creates the dead-letter stream again
    deadline = time.monotonic() + 15
    while broker.buried(DATASET) == 0:  # the worn one comes back after its lease
        assert time.monotonic() < deadline, "the worn message was never buried"
        assert await broker.pull(DATASET, 10, wait=0.5) == []
    assert [d.key for d in await broker.dead_letters(DATASET, 10, None)] == ["worn"]


async def test_headers_another_client_set_never_break_a_pull(
    prefix: str, broker: NatsBroker
) -> None:
    for published_at in ("soon", "1e300", "nan"):
        headers = {"Slipstream-Published-At": published_at, "Nats-Msg-Id": " "}
        await publish_raw(prefix, [published_at.encode()], headers=headers)
    got = await pull(broker, 3)
    assert len({d.key for d in got}) == 3  # derived: the message ids were blank
    for delivery in got:  # the stream's time, not the header's
        assert abs(delivery.published_at - time.time()) < 60
