"""The broker contract, written once against `Broker` and run over every backend in backends.py.

Only the Protocol is used here, and what a backend can do is read from its `capabilities`. Each
backend's lease and delivery limit come from its settings in backends.py (the quickest its
capabilities allow); the deadlines below are generous so that slower services pass, while the
tests finish as soon as the behaviour shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from slipstream.brokers import Broker, DeadLetter, Delivery, Outgoing
from slipstream.brokers.letters import MAX_REASON
from slipstream.config import Settings
from tests.contracts.backends import Backend

T = TypeVar("T")

DEADLINE = 15.0


async def eventually(fn: Callable[[], Awaitable[T]], within: float = DEADLINE) -> T:
    """Call `fn` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    interval = 0.01
    while True:
        result = await fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still {result!r} after {within} s")
        await asyncio.sleep(interval)
        interval = min(interval * 2, 0.2)


async def pull_exactly(broker: Broker, topic: str, count: int, batch: int = 10) -> list[Delivery]:
    """Pull until `count` deliveries arrived (a backend may hand out fewer than asked per call)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < count:  # no pause needed: pull itself waits
        assert time.monotonic() < deadline, f"only {len(got)} of {count} deliveries arrived"
        got.extend(await broker.pull(topic, batch, wait=1.0))
        assert len(got) <= count, f"expected {count} deliveries, got {len(got)}"
    return got


async def assert_nothing_pulled(broker: Broker, topic: str, wait: float) -> None:
    assert await broker.pull(topic, 10, wait=wait) == []


def messages(count: int, prefix: str = "k") -> list[Outgoing]:
    return [Outgoing(f"{prefix}{i}", f"payload {i}".encode()) for i in range(count)]


async def test_publish_pull_ack_round_trip(
    broker_settings: Settings, broker: Broker, token: str
) -> None:
    lease = broker_settings.lease_seconds
    topic = f"ds_{token}"
    sent = [
        Outgoing("e1", b'{"a": 1}', {"content-type": "application/json", "source": "test"}),
        Outgoing("e2", bytes(range(256))),  # any bytes, NUL included
    ]
    before = time.time()
    await broker.publish(topic, sent)
    after = time.time()

    got = sorted(await pull_exactly(broker, topic, 2), key=lambda d: d.key)

    assert [(d.key, d.data, d.attributes) for d in got] == [
        ("e1", b'{"a": 1}', {"content-type": "application/json", "source": "test"}),
        ("e2", bytes(range(256)), {}),
    ]
    assert all(d.delivery_count == 1 for d in got)
    assert all(before - 1 <= d.published_at <= after + 1 for d in got)
    assert len({d.handle for d in got}) == 2

    await broker.ack(topic, got)
    await assert_nothing_pulled(broker, topic, wait=lease * 1.5)  # past the lease: gone for good


async def test_publishing_nothing_is_a_no_op(broker: Broker, token: str) -> None:
    await broker.publish(f"ds_{token}", [])
    assert await broker.backlog(f"ds_{token}") == 0


async def test_pull_respects_max_messages(broker: Broker, token: str) -> None:
    topic = f"ds_{token}"
    await broker.publish(topic, messages(5))
    first = await broker.pull(topic, 2, wait=5)
    assert 1 <= len(first) <= 2
    rest = await pull_exactly(broker, topic, 5 - len(first), batch=2)
    assert sorted(d.key for d in first + rest) == [f"k{i}" for i in range(5)]


async def test_pull_on_an_empty_topic_returns_nothing_after_wait(
    broker: Broker, token: str
) -> None:
    start = time.monotonic()
    assert await broker.pull(f"ds_{token}", 10, wait=1.0) == []
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 5


async def test_waiting_pull_returns_as_soon_as_a_message_arrives(
    broker: Broker, token: str
) -> None:
    topic = f"ds_{token}"
    start = time.monotonic()
    waiting = asyncio.create_task(broker.pull(topic, 10, wait=10))
    await broker.publish(topic, messages(1))
    got = await waiting
    assert [d.key for d in got] == ["k0"]
    assert time.monotonic() - start < 5


async def test_topics_are_isolated(broker: Broker, token: str) -> None:
    await broker.publish(f"other_{token}", messages(1, prefix="other"))
    await assert_nothing_pulled(broker, f"ds_{token}", wait=0.5)
    assert await broker.backlog(f"ds_{token}") == 0
    got = await pull_exactly(broker, f"other_{token}", 1)
    assert got[0].key == "other0"


async def test_unacked_message_comes_back_after_the_lease(broker: Broker, token: str) -> None:
    topic = f"ds_{token}"
    await broker.publish(topic, messages(1))
    [first] = await pull_exactly(broker, topic, 1)
    assert first.delivery_count == 1
    [second] = await pull_exactly(broker, topic, 1)
    assert (second.key, second.data, second.delivery_count) == (first.key, first.data, 2)


async def test_nack_without_delay_makes_the_message_available_at_once(
    broker_settings: Settings, broker: Broker, token: str
) -> None:
    lease = broker_settings.lease_seconds
    topic = f"ds_{token}"
    await broker.publish(topic, messages(1))
    got = await pull_exactly(broker, topic, 1)
    start = time.monotonic()
    await broker.nack(topic, got, delay=0)
    [again] = await pull_exactly(broker, topic, 1)
    assert time.monotonic() - start < lease  # not merely the lease running out
    assert (again.key, again.delivery_count) == ("k0", 2)


async def test_nack_with_delay_hides_the_message_until_then(
    broker_settings: Settings, broker: Broker, token: str
) -> None:
    lease = broker_settings.lease_seconds
    topic = f"ds_{token}"
    delay = lease * 2
    await broker.publish(topic, messages(1))
    got = await pull_exactly(broker, topic, 1)
    start = time.monotonic()
    await broker.nack(topic, got, delay=delay)
    # Past the end of the original lease, before the end of the delay.
    await assert_nothing_pulled(broker, topic, wait=lease * 1.2)
    [again] = await pull_exactly(broker, topic, 1)
    assert time.monotonic() - start >= delay * 0.9
    assert (again.key, again.delivery_count) == ("k0", 2)


async def test_message_never_acked_ends_in_the_dead_letters(
    broker_settings: Settings, broker: Broker, token: str
) -> None:
    max_deliveries = broker_settings.max_deliveries
    topic = f"ds_{token}"
    await broker.publish(topic, messages(1))
    for count in range(1, max_deliveries + 1):
        [delivery] = await pull_exactly(broker, topic, 1)
        assert delivery.delivery_count == count

    async def dead_and_not_redelivered() -> bool:
        assert await broker.pull(topic, 10, wait=0.2) == []
        return bool(await broker.dead_letters(topic, 10, None))

    await eventually(dead_and_not_redelivered)
    [dead] = await broker.dead_letters(topic, 10, None)
    assert (dead.key, dead.data, dead.deliveries) == ("k0", b"payload 0", max_deliveries)
    assert dead.reason
    assert dead.dead_at >= dead.published_at
    await assert_nothing_pulled(broker, topic, wait=0.5)
    assert await eventually(lambda: backlog_is(broker, topic, 0))
    # What pull buried itself is counted (the worker exports it); none in another topic.
    buried = {"broker": [1], "service": [0], "either": [0, 1]}
    assert broker.buried(topic) in buried[broker.capabilities.worn_out_by]
    assert broker.buried(f"other_{token}") == 0


async def assert_keys_of_their_own(broker: Broker, topic: str, first: list[Delivery]) -> None:
    """Non-empty, distinct, and the same on redelivery and in the dead letters."""
    keys = sorted(d.key for d in first)
    assert all(keys)
    assert len(set(keys)) == len(keys), keys
    await broker.nack(topic, first, delay=0)
    again = await pull_exactly(broker, topic, len(first))
    assert sorted(d.key for d in again) == keys
    await broker.dead_letter(topic, again, "kept for the test")
    letters = await eventually(lambda: letters_of(broker, topic, len(first)))
    assert sorted(letter.key for letter in letters) == keys


async def letters_of(broker: Broker, topic: str, count: int) -> list[DeadLetter]:
    letters = await broker.dead_letters(topic, 10, None)
    return letters if len(letters) >= count else []


async def test_a_message_published_without_a_key_gets_one_of_its_own(
    broker: Broker, token: str
) -> None:
    topic = f"ds_{token}"
    await broker.publish(topic, [Outgoing("", b'{"same": "data"}') for _ in range(3)])
    await assert_keys_of_their_own(broker, topic, await pull_exactly(broker, topic, 3))


async def test_a_message_another_client_sent_without_attributes_gets_a_key_of_its_own(
    broker_backend: Backend, broker_settings: Settings, broker: Broker, token: str
) -> None:
    assert broker_backend.publish_raw is not None
    topic = f"ds_{token}"
    await broker_backend.publish_raw(broker_settings, topic, [b'{"same": "data"}'] * 3)
    first = await pull_exactly(broker, topic, 3)
    assert [d.data for d in first] == [b'{"same": "data"}'] * 3
    await assert_keys_of_their_own(broker, topic, first)


async def test_a_dead_letter_is_never_refused_for_its_size(
    broker_backend: Backend, broker_settings: Settings, broker: Broker, token: str
) -> None:
    """The largest message the service takes, with the longest reason: the letter and the
    reason together may not fit, so the letter keeps the head of the data and says so."""
    assert broker_backend.publish_raw is not None
    topic = f"ds_{token}"
    largest = broker_backend.largest_raw or broker.capabilities.max_message_bytes
    assert largest is not None
    body = b'{"blob": "' + b"x" * (largest - 13) + b'"}'
    assert len(body) == largest - 1
    await broker_backend.publish_raw(broker_settings, topic, [body])
    [delivery] = await pull_exactly(broker, topic, 1)
    assert delivery.data == body
    await broker.dead_letter(topic, [delivery], "why " * 5000)

    [dead] = await eventually(lambda: letters_of(broker, topic, 1))
    assert dead.key == delivery.key
    assert dead.reason.startswith("why why")
    assert len(dead.reason) <= MAX_REASON
    if dead.truncated is None:
        assert dead.data == body
    else:
        assert dead.truncated.size == len(body)
        assert dead.truncated.sha256 == hashlib.sha256(body).hexdigest()
        assert body.startswith(dead.data)
        assert len(dead.data) > 200_000  # as much as fits: SQS's letters take 256 KiB
    await assert_nothing_pulled(broker, topic, wait=broker_settings.lease_seconds * 1.5)


async def test_dead_letter_keeps_the_reason(
    broker_settings: Settings, broker: Broker, token: str
) -> None:
    lease = broker_settings.lease_seconds
    topic = f"ds_{token}"
    await broker.publish(topic, messages(2))
    got = sorted(await pull_exactly(broker, topic, 2), key=lambda d: d.key)
    await broker.dead_letter(topic, got[:1], "field 'dep_time' is not a time")
    await broker.ack(topic, got[1:])

    [dead] = await broker.dead_letters(topic, 10, None)
    assert (dead.key, dead.data, dead.reason) == (
        "k0",
        b"payload 0",
        "field 'dep_time' is not a time",
    )
    assert dead.deliveries == 1
    assert await broker.dead_letters(f"other_{token}", 10, None) == []
    await assert_nothing_pulled(broker, topic, wait=lease * 1.5)  # not redelivered after the lease


async def test_dead_letters_page_oldest_first(broker: Broker, token: str) -> None:
    topic = f"ds_{token}"
    await broker.publish(topic, messages(3))
    got = sorted(await pull_exactly(broker, topic, 3), key=lambda d: d.key)
    for delivery in got:  # one call each, so that the order is defined
        await broker.dead_letter(topic, [delivery], f"bad {delivery.key}")

    first_page = await broker.dead_letters(topic, 2, None)
    assert [d.key for d in first_page] == ["k0", "k1"]
    second_page = await broker.dead_letters(topic, 2, first_page[-1].id)
    assert [d.key for d in second_page] == ["k2"]
    assert await broker.dead_letters(topic, 2, second_page[-1].id) == []


async def test_replay_dead_letters_publishes_them_again(broker: Broker, token: str) -> None:
    topic = f"ds_{token}"
    await broker.publish(topic, messages(3))
    got = sorted(await pull_exactly(broker, topic, 3), key=lambda d: d.key)
    for delivery in got:
        await broker.dead_letter(topic, [delivery], "try again later")
    dead = await broker.dead_letters(topic, 10, None)

    assert await broker.replay_dead_letters(topic, [dead[1].id]) == 1
    [replayed] = await pull_exactly(broker, topic, 1)
    assert (replayed.key, replayed.data, replayed.delivery_count) == ("k1", b"payload 1", 1)
    assert [d.key for d in await broker.dead_letters(topic, 10, None)] == ["k0", "k2"]

    assert await broker.replay_dead_letters(topic, None) == 2
    rest = await pull_exactly(broker, topic, 2)
    assert sorted(d.key for d in rest) == ["k0", "k2"]
    assert await broker.dead_letters(topic, 10, None) == []
    await broker.ack(topic, [replayed, *rest])
    assert await eventually(lambda: backlog_is(broker, topic, 0))


async def backlog_is(broker: Broker, topic: str, expected: int) -> bool:
    return await broker.backlog(topic) == expected


async def test_backlog_counts_published_messages_not_yet_acked(broker: Broker, token: str) -> None:
    if not broker.capabilities.counts_backlog:
        pytest.skip(f"{type(broker).__name__} declares it counts no backlog")
    topic = f"ds_{token}"
    await broker.publish(topic, messages(5))
    assert await eventually(lambda: backlog_is(broker, topic, 5))
    leased = await pull_exactly(broker, topic, 2, batch=2)
    assert await eventually(lambda: backlog_is(broker, topic, 5))  # leased ones included
    await broker.ack(topic, leased)
    assert await eventually(lambda: backlog_is(broker, topic, 3))
    assert await broker.backlog(f"other_{token}") == 0


async def test_a_thousand_messages_are_each_delivered_once(
    broker: Broker, broker_backend: Backend, token: str
) -> None:
    topic = f"ds_{token}"
    count = broker_backend.volume
    sent = [Outgoing(f"k{i}", i.to_bytes(4, "big"), {"n": str(i)}) for i in range(count)]
    await broker.publish(topic, sent)

    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 60
    while len(seen) < len(sent):
        assert time.monotonic() < deadline, f"only {len(seen)} of {len(sent)} arrived"
        batch = await broker.pull(topic, 100, wait=1.0)
        for delivery in batch:
            assert delivery.data == int(delivery.attributes["n"]).to_bytes(4, "big")
        seen.update(d.key for d in batch)
        await broker.ack(topic, batch)

    assert set(seen) == {m.key for m in sent}
    assert max(seen.values()) == 1
    await assert_nothing_pulled(broker, topic, wait=0.5)
