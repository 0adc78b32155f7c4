"""The pubsub:// broker against the Pub/Sub emulator (tests/services.py starts it).

What the shared contract (tests/contracts) cannot see: the attributes on the wire, the resources
and their settings, two brokers as competing consumers, Pub/Sub's own dead letter policy, the
broker's enforcement below Pub/Sub's floor of 5 attempts. The first tests need no emulator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from slipstream.brokers import BrokerSettings, Delivery, Outgoing, create_broker
from slipstream.brokers.pubsub import PubSubBroker
from slipstream.brokers.pubsub_messages import (
    dead_message,
    letter_id,
    letter_order,
    replayable,
    request_size,
)
from slipstream.brokers.pubsub_resources import (
    CAPABILITIES,
    MAX_REQUEST,
    Target,
    limits,
    names_for,
    parse_url,
)
from slipstream.config import Settings
from slipstream.errors import ConfigError, MessageTooLarge
from tests import helpers
from tests.contracts.backends import quickest
from tests.services import pubsub

DATASET = "flights"


def settings(prefix: str, **values: Any) -> Settings:
    values = {**quickest(CAPABILITIES), **values}  # Pub/Sub's floors: 10 s, 5 deliveries
    url = f"pubsub://{pubsub.project}?prefix={prefix}"
    return helpers.settings(broker_url=url, **values)


# --- without the emulator -----------------------------------------------------------------


def test_url_names_the_project_and_an_optional_prefix() -> None:
    assert parse_url("pubsub://my-proj") == Target("my-proj", "slipstream")
    assert parse_url("pubsub://my-proj?prefix=staging") == Target("my-proj", "staging")
    names = names_for(Target("p", "s"), "flights")
    assert (names.topic, names.subscription) == (
        "projects/p/topics/s-flights",
        "projects/p/subscriptions/s-flights",
    )
    assert (names.dead_topic, names.dead_subscription) == (
        "projects/p/topics/s-flights-dlq",
        "projects/p/subscriptions/s-flights-dlq",
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("pubsub://", "expected pubsub://PROJECT"),
        ("pubsub://p/extra", "expected pubsub://PROJECT"),
        ("pubsub://p?prefix=1abc", "option prefix='1abc' must start with a letter"),
        ("pubsub://p?prefix=googx", "not start with goog"),
        ("pubsub://p?prefx=a", "unknown option 'prefx'; the options are prefix"),
    ],
)
def test_bad_urls_fail_with_one_clear_line(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_url(url)


def test_settings_below_or_above_pubsub_bounds_are_clamped_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "slipstream.brokers.pubsub"):
        low = limits(BrokerSettings.of(settings("p", lease_seconds=1, max_deliveries=3)))
        high = limits(BrokerSettings.of(settings("p", lease_seconds=3600, max_deliveries=500)))
    assert (low.ack_deadline, low.policy_attempts, low.max_deliveries) == (10, 5, 3)
    assert (high.ack_deadline, high.policy_attempts, high.max_deliveries) == (600, 100, 500)
    assert "using 10 s" in caplog.text
    assert "broker dead-letters earlier itself" in caplog.text
    assert (
        limits(BrokerSettings.of(settings("p", lease_seconds=30, max_deliveries=7))).ack_deadline
        == 30
    )


def test_dead_letter_ids_order_by_time_then_message_id() -> None:
    ids = [letter_id(2.0, "10"), letter_id(1.0, "7"), letter_id(2.0, "9")]
    assert sorted(ids, key=letter_order) == [ids[1], ids[2], ids[0]]
    with pytest.raises(ValueError, match="not a dead letter id"):
        letter_order("42")


def test_a_letter_near_the_request_limit_keeps_the_head_of_its_data_and_a_reference() -> None:
    """The emulator delivers nothing over 4 MiB (docs/backends/pubsub.md), so letters of
    messages near Pub/Sub's 10 MB are sized here, as the client library counts them."""
    topic = f"projects/{pubsub.project}/topics/p-flights-dlq"
    data = b"z" * (MAX_REQUEST - 200)  # fitted as a message, not with a letter's attributes
    delivery = Delivery("ack-1", "k-1", data, 3, 1_700_000_000.0, {"request_id": "r-1"})
    letter, attributes = dead_message(topic, DATASET, delivery, "why " * 1000, 3)
    assert request_size(topic, letter, attributes) <= MAX_REQUEST
    assert data.startswith(letter)
    assert len(letter) > MAX_REQUEST - 3000
    assert len(attributes["reason"].encode()) <= 1024
    cut = json.loads(attributes["truncated"])
    assert cut == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "source": ""}
    small, small_attributes = dead_message(topic, DATASET, delivery_of_size(100), "why", 1)
    assert len(small) == 100
    assert "truncated" not in small_attributes


def test_a_dead_letter_too_big_to_publish_again_is_left_out_of_a_replay() -> None:
    """A message near 10 MB moved by Pub/Sub's policy is over the limit once it carries the
    dataset and event_id attributes again: replay leaves it where it is (logged), not a 500."""
    from google.pubsub_v1 import types

    def letter(message_id: str, size: int) -> Any:
        message = types.PubsubMessage(data=b"z" * size, message_id=message_id)
        return types.ReceivedMessage(ack_id=f"ack-{message_id}", message=message)

    topic = f"projects/{pubsub.project}/topics/p-flights"
    items = [letter("1", MAX_REQUEST - 80), letter("2", 10)]
    assert [item.message.message_id for item, _ in replayable(topic, DATASET, items)] == ["2"]


def delivery_of_size(size: int) -> Delivery:
    return Delivery("ack-2", "k-2", b"a" * size, 1, 1_700_000_000.0, {})


# --- against the emulator -----------------------------------------------------------------


@pytest.fixture
def prefix(pubsub_emulator: str) -> str:
    return f"u{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[PubSubBroker]:
    instance = create_broker(settings(prefix))
    assert isinstance(instance, PubSubBroker)
    await instance.open([DATASET])
    yield instance
    await instance.close()


@pytest.fixture
def subscriber(pubsub_emulator: str) -> Iterator[Any]:
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


async def pull_all(broker: PubSubBroker, count: int, within: float = 30) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived"
        batch = await broker.pull(DATASET, 1000, wait=1.0)
        await broker.ack(DATASET, batch)
        got.extend(batch)
    return got


async def test_resources_are_created_with_the_lease_and_the_policies(
    broker: PubSubBroker, prefix: str, subscriber: Any
) -> None:
    names = names_for(Target(pubsub.project, prefix), DATASET)
    main = subscriber.get_subscription(request={"subscription": names.subscription})
    assert main.topic == names.topic
    assert main.ack_deadline_seconds == 10
    assert main.dead_letter_policy.dead_letter_topic == names.dead_topic
    assert main.dead_letter_policy.max_delivery_attempts == 5
    assert main.retry_policy.minimum_backoff.total_seconds() == 1
    dead = subscriber.get_subscription(request={"subscription": names.dead_subscription})
    assert dead.topic == names.dead_topic
    await broker.ping()


async def test_without_create_resources_missing_ones_fail_by_name(prefix: str) -> None:
    absent = create_broker(settings(prefix, create_resources=False))
    with pytest.raises(ConfigError, match=rf"{prefix}-{DATASET}-dlq.*SLIPSTREAM_CREATE_RESOURCES"):
        await absent.open([DATASET])
    await absent.close()

    await (creator := create_broker(settings(prefix))).open([DATASET])
    await creator.close()
    present = create_broker(settings(prefix, create_resources=False))
    await present.open([DATASET])  # all there now: no complaint
    await present.close()


async def test_attributes_on_the_wire_carry_dataset_and_event_id(
    broker: PubSubBroker, prefix: str, subscriber: Any
) -> None:
    await broker.publish(DATASET, [Outgoing("ev-1", b"{}", {"source": "test"})])
    names = names_for(Target(pubsub.project, prefix), DATASET)
    request = {"subscription": names.subscription, "max_messages": 10}
    response = subscriber.pull(request=request, timeout=5)
    [item] = response.received_messages
    assert dict(item.message.attributes) == {
        "dataset": DATASET,
        "event_id": "ev-1",
        "source": "test",
    }
    release = {"subscription": names.subscription, "ack_ids": [item.ack_id]}
    subscriber.modify_ack_deadline(request={**release, "ack_deadline_seconds": 0})
    # The broker hands back the message's own attributes and its key, not its bookkeeping.
    [delivery] = await broker.pull(DATASET, 10, wait=5)
    assert (delivery.key, delivery.attributes) == ("ev-1", {"source": "test"})


async def test_two_brokers_are_competing_consumers(broker: PubSubBroker, prefix: str) -> None:
    other = create_broker(settings(prefix))
    await other.open([DATASET])
    try:
        await broker.publish(DATASET, [Outgoing(f"k{i}", b"x") for i in range(50)])
        first = await broker.pull(DATASET, 10, wait=5)
        second = await other.pull(DATASET, 100, wait=5)
        assert first
        assert second
        keys = [d.key for d in first + second]
        assert len(set(keys)) == len(keys), "a leased message went to the other consumer"
        await broker.ack(DATASET, first)
        await other.ack(DATASET, second)
        rest: list[str] = []
        while len(keys) + len(rest) < 50:
            batch = await other.pull(DATASET, 100, wait=2) or await broker.pull(DATASET, 100, 2)
            await broker.ack(DATASET, batch)  # an ack id is good with any client
            rest.extend(d.key for d in batch)
        assert sorted(keys + rest) == sorted(f"k{i}" for i in range(50))
    finally:
        await other.close()


async def test_a_thousand_messages_in_one_publish_all_arrive(broker: PubSubBroker) -> None:
    sent = [Outgoing(f"k{i}", i.to_bytes(4, "big"), {"n": str(i)}) for i in range(1000)]
    await broker.publish(DATASET, sent)
    got = await pull_all(broker, 1000)
    seen = Counter(d.key for d in got)
    assert set(seen) == {m.key for m in sent}
    assert max(seen.values()) == 1
    assert all(d.data == int(d.attributes["n"]).to_bytes(4, "big") for d in got)


@pytest.mark.slow
async def test_pubsub_dead_letter_policy_moves_a_message_nacked_five_times(
    broker: PubSubBroker,
) -> None:
    await broker.publish(DATASET, [Outgoing("poison", b"bad", {"source": "test"})])
    for attempt in range(1, 6):
        [delivery] = await broker.pull(DATASET, 10, wait=15)
        assert delivery.delivery_count == attempt
        await broker.nack(DATASET, [delivery], 0)  # a nack counts as a delivery attempt

    deadline = time.monotonic() + 20
    while not (letters := await broker.dead_letters(DATASET, 10, None)):
        assert time.monotonic() < deadline, "Pub/Sub never moved the message"
        assert await broker.pull(DATASET, 10, wait=0.5) == []
    [dead] = letters
    # Moved by the emulator's policy (the broker would have said "lease expired or nacked").
    assert dead.reason == "delivered 5 times without an ack (Pub/Sub dead letter policy)"
    assert (dead.key, dead.data, dead.deliveries) == ("poison", b"bad", 5)
    assert dead.published_at <= dead.dead_at

    assert await broker.replay_dead_letters(DATASET, None) == 1
    [again] = await broker.pull(DATASET, 10, wait=5)
    assert (again.key, again.data, again.attributes) == ("poison", b"bad", {"source": "test"})
    assert again.delivery_count == 1
    await broker.ack(DATASET, [again])
    assert await broker.dead_letters(DATASET, 10, None) == []


async def test_below_pubsubs_floor_the_broker_dead_letters_itself(prefix: str) -> None:
    broker = create_broker(settings(prefix, max_deliveries=2))
    await broker.open([DATASET])
    try:
        await broker.publish(DATASET, [Outgoing("poison", b"bad")])
        for attempt in (1, 2):
            [delivery] = await broker.pull(DATASET, 10, wait=15)
            assert delivery.delivery_count == attempt
            await broker.nack(DATASET, [delivery], 0)
        deadline = time.monotonic() + 20
        while not (letters := await broker.dead_letters(DATASET, 10, None)):
            assert time.monotonic() < deadline, "the broker never buried the message"
            assert await broker.pull(DATASET, 10, wait=0.5) == []  # seen a third time: buried
        [dead] = letters
        assert dead.reason == "delivered 2 times without an ack (lease expired or nacked each time)"
        assert (dead.key, dead.deliveries) == ("poison", 2)
    finally:
        await broker.close()


async def test_a_message_over_the_request_limit_is_refused_before_anything_is_sent(
    broker: PubSubBroker,
) -> None:
    """HTTP 413, not 500: the library's own error would come mid-batch, some messages sent."""
    small, huge = Outgoing("small", b"{}"), Outgoing("huge", b"x" * MAX_REQUEST)
    with pytest.raises(MessageTooLarge, match=r"'huge' takes \d+ bytes .* 10000000 at most"):
        await broker.publish(DATASET, [small, huge])
    assert await broker.pull(DATASET, 10, wait=1.0) == []
