"""The sqs:// broker against moto over real HTTP (tests/services.py starts it).

What the shared contract (tests/contracts) cannot see: the resources and their settings (redrive
policy, queue policy, raw delivery), the bytes on the wire, SNS really fanning out to the queue,
SQS's own redrive into the dead letter queue, partial batch failures, a cancelled pull. The first
tests need no server.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from slipstream.brokers import Delivery, Outgoing, create_broker
from slipstream.brokers.sqs import SqsBroker, _once_each
from slipstream.brokers.sqs_calls import batches
from slipstream.brokers.sqs_messages import (
    dead_entry,
    delivery_of,
    entry,
    letter_id,
    letter_of,
    letter_order,
)
from slipstream.brokers.sqs_resources import CAPABILITIES, MAX_BYTES, Target, names_for, parse_url
from slipstream.config import Settings
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge
from tests import helpers
from tests.contracts.backends import quickest
from tests.services import free_port

DATASET = "flights"


def settings(prefix: str, sns: bool = True, **values: Any) -> Settings:
    values = {**quickest(CAPABILITIES), **values}  # 2 s: two whole seconds
    url = f"sqs://us-east-1?prefix={prefix}&sns={'true' if sns else 'false'}"
    return helpers.settings(broker_url=url, **values)


def received(body: str, attributes: dict[str, str], count: int = 1) -> dict[str, Any]:
    """A message as ReceiveMessage returns it."""
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "h-1",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(count), "SentTimestamp": "1700000000123"},
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    }


def round_trip(key: str, data: bytes, attributes: dict[str, str]) -> Delivery:
    wire = entry(key, data, attributes)
    return delivery_of(received(wire.body, wire.attributes))


# --- without the server -------------------------------------------------------------------


def test_url_names_the_region_a_prefix_and_the_mode() -> None:
    assert parse_url("sqs://us-east-1") == Target("us-east-1", "slipstream", True)
    assert parse_url("sqs://eu-west-3?prefix=staging&sns=false") == Target(
        "eu-west-3", "staging", False
    )
    names = names_for(Target("us-east-1", "s", True), "flights")
    assert (names.queue, names.dead_queue, names.topic) == (
        "s-flights",
        "s-flights-dlq",
        "s-flights",
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqs://", "expected sqs://REGION"),
        ("sqs://us-east-1/queue", "expected sqs://REGION"),
        ("sqs://US_EAST", "not an AWS region"),
        ("sqs://us-east-1?prefix=a.b", "option prefix='a.b' must be letters, digits"),
        ("sqs://us-east-1?sns=maybe", "option sns='maybe' must be true or false"),
        ("sqs://us-east-1?prefx=a", "unknown option 'prefx'; the options are prefix, sns"),
    ],
)
def test_bad_urls_fail_with_one_clear_line(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_url(url)


def test_a_name_too_long_for_sqs_fails_at_once() -> None:
    with pytest.raises(ConfigError, match="at most 80"):
        names_for(Target("us-east-1", "p" * 60, True), "d" * 20)


def test_text_goes_as_text_and_anything_else_as_base64() -> None:
    text = entry("e1", '{"a": "é"}'.encode(), {})
    assert (text.body, text.attributes) == ('{"a": "é"}', {"event_id": "e1"})
    binary = entry("e2", bytes(range(256)), {})
    assert binary.attributes["body_encoding"] == "base64"
    nul = entry("e3", b"a\x00b", {})  # valid UTF-8, but SQS refuses the character
    assert nul.attributes["body_encoding"] == "base64"
    empty = entry("e4", b"", {})
    assert (empty.body, empty.attributes["body_encoding"]) == ("empty", "empty")
    for key, data in [("e2", bytes(range(256))), ("e3", b"a\x00b"), ("e4", b""), ("e5", b"x")]:
        assert round_trip(key, data, {}).data == data


def test_attributes_travel_one_by_one_or_packed_when_they_do_not_fit() -> None:
    plain = entry("e1", b"x", {"source": "api", "content-type": "application/json"})
    assert plain.attributes == {
        "source": "api",
        "content-type": "application/json",
        "event_id": "e1",
    }
    awkward = [
        {f"a{i}": str(i) for i in range(10)},  # over 10 with event_id
        {"reason": "mine"},  # a reserved name
        {"empty": ""},  # SQS refuses empty values
        {"bad name": "x"},  # and names outside [A-Za-z0-9_.-]
        {"AWS.thing": "x"},
    ]
    for attributes in awkward:
        wire = entry("e1", b"x", attributes)
        assert set(wire.attributes) == {"attributes_json", "event_id"}
        assert len(wire.attributes) <= 10
        delivery = round_trip("e1", b"x", attributes)
        assert (delivery.key, delivery.attributes) == ("e1", attributes)


def test_a_message_over_the_limit_is_refused_before_sending() -> None:
    with pytest.raises(MessageTooLarge, match="262144 at most"):
        entry("big", b"x" * MAX_BYTES, {})


@pytest.mark.parametrize(
    "data",
    [
        "é".encode() * (MAX_BYTES // 2),  # text, cut at a character boundary
        bytes(range(256)) * (MAX_BYTES // 256),  # base64 on the wire
        b"x" * (MAX_BYTES - 100),  # a message that fitted alone, not with a letter's attributes
    ],
    ids=["text", "binary", "at-the-edge"],
)
def test_a_dead_letter_keeps_the_head_of_data_too_big_for_it_and_a_reference(data: bytes) -> None:
    delivery = Delivery("handle", "k-1", data, 4, 1_700_000_000.0, {"request_id": "r-1"})
    letter = dead_entry(delivery, "why " * 1000, 1_700_000_100.0)
    assert letter.size <= MAX_BYTES
    message = received(letter.body, letter.attributes)
    dead = letter_of(message, 5)
    assert dead.key == "k-1"
    assert len(dead.reason) <= 1024
    assert dead.truncated is not None
    assert dead.truncated.size == len(data)
    assert dead.truncated.sha256 == hashlib.sha256(data).hexdigest()
    assert data.startswith(dead.data)
    assert len(dead.data) > MAX_BYTES * 0.7  # base64 takes 4 bytes for 3
    small = dead_entry(Delivery("handle", "k-2", b"{}", 1, 1.0, {}), "r", 2.0)
    assert letter_of(received(small.body, small.attributes), 5).truncated is None


def test_batches_hold_ten_messages_and_256_kib_at_most() -> None:
    small = [entry(f"k{i}", b"x", {}) for i in range(25)]
    assert [len(b) for b in batches(small)] == [10, 10, 5]
    large = [entry(f"k{i}", b"x" * 100_000, {}) for i in range(5)]
    assert [len(b) for b in batches(large)] == [2, 2, 1]


def test_a_pull_hands_out_each_message_once_with_its_latest_handle() -> None:
    first, again, other = received("a", {}, count=1), received("a", {}, count=2), received("b", {})
    again["ReceiptHandle"] = "h-2"
    other["MessageId"] = "m-2"
    assert _once_each([first, other, again]) == [again, other]


def test_dead_letter_ids_order_by_time_then_message_id() -> None:
    ids = [letter_id(2.0, "b"), letter_id(1.5, "z"), letter_id(2.0, "a")]
    assert sorted(ids, key=letter_order) == [ids[1], ids[2], ids[0]]
    with pytest.raises(ValueError, match="not a dead letter id"):
        letter_order("nonsense")


# --- against moto -------------------------------------------------------------------------


@pytest.fixture
def prefix(moto_server: str) -> str:
    return f"u{uuid.uuid4().hex[:10]}"


@pytest.fixture
def aws() -> tuple[Any, Any]:
    """Plain boto3 clients, to look behind the broker's back."""
    return boto3.client("sqs", region_name="us-east-1"), boto3.client(
        "sns", region_name="us-east-1"
    )


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[SqsBroker]:
    instance = create_broker(settings(prefix))
    assert isinstance(instance, SqsBroker)
    await instance.open([DATASET])
    yield instance
    await instance.close()


def aws_of(broker: SqsBroker) -> Any:
    """The broker's clients: the partial failure tests stub one of their batch calls."""
    assert broker._calls is not None
    return broker._calls


def queue_attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    found: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return found


async def test_resources_carry_the_lease_the_redrive_and_raw_delivery(
    broker: SqsBroker, prefix: str, aws: tuple[Any, Any]
) -> None:
    sqs, sns = aws
    queue = queue_attributes(sqs, f"{prefix}-{DATASET}")
    dead = queue_attributes(sqs, f"{prefix}-{DATASET}-dlq")
    assert queue["VisibilityTimeout"] == "2"
    assert queue["MessageRetentionPeriod"] == dead["MessageRetentionPeriod"] == "1209600"
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead["QueueArn"],
        "maxReceiveCount": 3,
    }
    topic_arn = queue["QueueArn"].replace(":sqs:", ":sns:")
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("sqs", queue["QueueArn"])
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
    assert attributes["Attributes"]["RawMessageDelivery"] == "true"


async def test_the_queue_policy_admits_only_the_topic(
    broker: SqsBroker, prefix: str, aws: tuple[Any, Any]
) -> None:
    sqs, _ = aws
    queue = queue_attributes(sqs, f"{prefix}-{DATASET}")
    topic_arn = queue["QueueArn"].replace(":sqs:", ":sns:")
    [statement] = json.loads(queue["Policy"])["Statement"]
    assert statement == {
        "Sid": "slipstream-topic-sends",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue["QueueArn"],
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    assert "Policy" not in queue_attributes(sqs, f"{prefix}-{DATASET}-dlq")


async def test_without_sns_there_is_no_topic_and_no_policy(
    prefix: str, aws: tuple[Any, Any]
) -> None:
    sqs, sns = aws
    instance = create_broker(settings(prefix, sns=False))
    await instance.open([DATASET])
    try:
        await instance.publish(DATASET, [Outgoing("e1", b"direct")])
        [delivery] = await instance.pull(DATASET, 10, wait=5)
        assert (delivery.key, delivery.data) == ("e1", b"direct")
    finally:
        await instance.close()
    assert "Policy" not in queue_attributes(sqs, f"{prefix}-{DATASET}")
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert not [t for t in topics if t.endswith(f":{prefix}-{DATASET}")]


async def test_sns_fans_out_to_the_queue_raw_with_attributes_intact(
    broker: SqsBroker, prefix: str, aws: tuple[Any, Any]
) -> None:
    sqs, sns = aws
    url = sqs.get_queue_url(QueueName=f"{prefix}-{DATASET}")["QueueUrl"]
    # A second subscriber on the same topic, as another team's consumer would be.
    other_url = sqs.create_queue(QueueName=f"{prefix}-other")["QueueUrl"]
    other_arn = queue_attributes(sqs, f"{prefix}-other")["QueueArn"]
    topic_arn = queue_attributes(sqs, f"{prefix}-{DATASET}")["QueueArn"].replace(":sqs:", ":sns:")
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=other_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    await broker.publish(
        DATASET, [Outgoing("e1", b'{"id": "e1"}', {"dataset": DATASET, "request_id": "r-7"})]
    )

    for queue_url in (url, other_url):  # behind the broker's back: what SQS really holds
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=5,
            VisibilityTimeout=0,
        )
        [message] = response["Messages"]
        assert message["Body"] == '{"id": "e1"}'  # raw: no SNS envelope
        assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {
            "event_id": "e1",
            "dataset": DATASET,
            "request_id": "r-7",
        }
    [delivery] = await broker.pull(DATASET, 10, wait=5)
    assert (delivery.key, delivery.data, delivery.attributes) == (
        "e1",
        b'{"id": "e1"}',
        {"dataset": DATASET, "request_id": "r-7"},
    )
    assert time.time() - 60 < delivery.published_at <= time.time() + 1


async def test_redrive_moves_a_message_to_the_dead_letters_after_n_receives(
    broker: SqsBroker,
) -> None:
    await broker.publish(DATASET, [Outgoing("poison", b"never acked", {"source": "t"})])
    counts: list[int] = []
    deadline = time.monotonic() + 30
    while len(counts) < 3:  # three leases of 2 s run out, one after the other
        assert time.monotonic() < deadline
        counts.extend(d.delivery_count for d in await broker.pull(DATASET, 10, wait=1))
    assert counts == [1, 2, 3]

    async def dead() -> list[Any]:
        assert await broker.pull(DATASET, 10, wait=1) == []  # the 4th receive moves it
        return await broker.dead_letters(DATASET, 10, None)

    letters: list[Any] = []
    while not letters:
        assert time.monotonic() < deadline, "not dead-lettered by the redrive policy"
        letters = await dead()
    [letter] = letters
    assert (letter.key, letter.data, letter.deliveries) == ("poison", b"never acked", 3)
    assert letter.reason == "received 3 times without being deleted (SQS redrive)"
    assert letter.dead_at >= letter.published_at
    # Listing released it: it is still there, and replay brings it back, attributes and all.
    assert [d.id for d in await broker.dead_letters(DATASET, 10, None)] == [letter.id]
    assert await broker.replay_dead_letters(DATASET, [letter.id]) == 1
    [again] = await broker.pull(DATASET, 10, wait=5)
    assert (again.key, again.delivery_count, again.attributes) == ("poison", 1, {"source": "t"})
    assert await broker.dead_letters(DATASET, 10, None) == []


async def test_a_dead_letter_too_big_to_send_again_stays_and_the_others_are_replayed(
    prefix: str, broker: SqsBroker, aws: tuple[Any, Any]
) -> None:
    """Another client may send SQS's own 1 MiB straight to the queue; redriven, such a message
    is over what the broker sends (256 KiB): replay leaves it in the dead letters, not a 500."""
    sqs, _ = aws
    names = names_for(parse_url(f"sqs://us-east-1?prefix={prefix}"), DATASET)
    dead_url = sqs.get_queue_url(QueueName=names.dead_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=dead_url, MessageBody="x" * 900_000)
    sqs.send_message(QueueUrl=dead_url, MessageBody='{"small": true}')
    assert len(await broker.dead_letters(DATASET, 10, None)) == 2
    assert await broker.replay_dead_letters(DATASET, None) == 1
    [again] = await broker.pull(DATASET, 10, wait=5)
    assert again.data == b'{"small": true}'
    [kept] = await broker.dead_letters(DATASET, 10, None)
    assert len(kept.data) == 900_000


def failing_first(
    real: Callable[..., Any], failures: list[dict[str, Any]], calls: list[int]
) -> Callable[..., Any]:
    """The client's batch call, answering its first call with `failures` for the entries
    whose Id they name (and sending the rest for real)."""

    def call(**kwargs: Any) -> Any:
        calls.append(1)
        field = "Entries" if "Entries" in kwargs else "PublishBatchRequestEntries"
        if len(calls) > 1:
            return real(**kwargs)
        failed_ids = {f["Id"] for f in failures}
        rest = [e for e in kwargs[field] if e["Id"] not in failed_ids]
        response = real(**{**kwargs, field: rest})
        return {**response, "Failed": failures}

    return call


@pytest.mark.parametrize("sns", [True, False], ids=["sns", "direct"])
async def test_entries_failed_on_aws_side_are_sent_again(
    prefix: str, sns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = create_broker(settings(prefix, sns=sns))
    assert isinstance(instance, SqsBroker)
    await instance.open([DATASET])
    try:
        client, method = (
            (aws_of(instance).sns, "publish_batch")
            if sns
            else (aws_of(instance).sqs, "send_message_batch")
        )
        calls: list[int] = []
        failure = {"Id": "3", "Code": "InternalError", "Message": "try again", "SenderFault": False}
        monkeypatch.setattr(
            client, method, failing_first(getattr(client, method), [failure], calls)
        )
        await instance.publish(DATASET, [Outgoing(f"k{i}", b"x") for i in range(10)])
        assert len(calls) == 2  # the batch, then entry 3 alone
        keys: set[str] = set()
        deadline = time.monotonic() + 20
        while len(keys) < 10:
            assert time.monotonic() < deadline, f"only {sorted(keys)} arrived"
            batch = await instance.pull(DATASET, 10, wait=1)
            keys.update(d.key for d in batch)
            await instance.ack(DATASET, batch)
        assert keys == {f"k{i}" for i in range(10)}
    finally:
        await instance.close()


async def test_entries_that_keep_failing_or_are_refused_fail_the_publish(
    broker: SqsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_failing(**kwargs: Any) -> Any:
        entries = kwargs["PublishBatchRequestEntries"]
        return {
            "Successful": [{"Id": e["Id"], "MessageId": "m"} for e in entries[1:]],
            "Failed": [{"Id": entries[0]["Id"], "Code": "InternalError", "SenderFault": False}],
        }

    monkeypatch.setattr(aws_of(broker).sns, "publish_batch", always_failing)
    with pytest.raises(BackendUnavailable, match="1 of 3 messages still unsent after 4 attempts"):
        await broker.publish(DATASET, [Outgoing(f"k{i}", b"x") for i in range(3)])

    def refusing(**kwargs: Any) -> Any:
        entries = kwargs["PublishBatchRequestEntries"]
        return {
            "Successful": [],
            "Failed": [{"Id": entries[0]["Id"], "Code": "InvalidParameter", "SenderFault": True}],
        }

    monkeypatch.setattr(aws_of(broker).sns, "publish_batch", refusing)
    with pytest.raises(BackendUnavailable, match="1 of 1 messages refused"):
        await broker.publish(DATASET, [Outgoing("k", b"x")])


@pytest.mark.parametrize("sns", [True, False], ids=["sns", "direct"])
async def test_a_thousand_messages_in_one_publish_all_arrive(
    prefix: str, sns: bool, aws: tuple[Any, Any]
) -> None:
    sqs, _ = aws
    instance = create_broker(settings(prefix, sns=sns))
    await instance.open([DATASET])
    try:
        await instance.publish(
            DATASET,
            [Outgoing(f"k{i}", f"payload {i}".encode(), {"n": str(i)}) for i in range(1000)],
        )
        # moto counts exactly (AWS approximately); draining 1,000 is the contract's business.
        attributes = queue_attributes(sqs, f"{prefix}-{DATASET}")
        assert int(attributes["ApproximateNumberOfMessages"]) == 1000
        assert await instance.backlog(DATASET) == 1000
    finally:
        await instance.close()


async def test_without_create_resources_missing_ones_are_named(
    prefix: str, broker: SqsBroker, aws: tuple[Any, Any]
) -> None:
    absent = create_broker(settings(f"{prefix}x", create_resources=False))
    with pytest.raises(ConfigError, match=r"queue .*-dlq, queue .* not found"):
        await absent.open([DATASET])
    await absent.close()
    sqs, _ = aws  # queues made by hand, the topic forgotten
    for name in (f"{prefix}y-{DATASET}-dlq", f"{prefix}y-{DATASET}"):
        sqs.create_queue(QueueName=name)
    no_topic = create_broker(settings(f"{prefix}y", create_resources=False))
    with pytest.raises(ConfigError, match=rf"topic {prefix}y-{DATASET} not found"):
        await no_topic.open([DATASET])
    await no_topic.close()
    present = create_broker(settings(prefix, create_resources=False))
    await present.open([DATASET])  # made by `broker`: found, checked, used
    try:
        await present.publish(DATASET, [Outgoing("e1", b"x")])
        [delivery] = await present.pull(DATASET, 10, wait=5)
        assert delivery.key == "e1"
    finally:
        await present.close()


async def test_an_unreachable_endpoint_is_backend_unavailable(
    prefix: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    instance = create_broker(settings(prefix))
    with pytest.raises(BackendUnavailable, match="sqs us-east-1"):
        await instance.open([DATASET])
    await instance.close()


async def test_missing_credentials_fail_at_start_with_one_clear_line(
    prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    instance = create_broker(settings(prefix))
    with pytest.raises(ConfigError, match="sqs:// needs AWS credentials"):
        await instance.open([DATASET])
    await instance.close()
