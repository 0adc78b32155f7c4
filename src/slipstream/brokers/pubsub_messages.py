"""Pub/Sub messages of the `pubsub://` broker ↔ Slipstream's Delivery and DeadLetter.

Every message carries the attributes `dataset` and `event_id` (the key) besides its own; a
Delivery shows only its own. A dead letter published by the broker adds `reason`, `deliveries`
and `published_at`, and `truncated` (JSON: size and sha256 of the whole data) when only the head
of the data fits beside them; one moved by Pub/Sub's dead letter policy has the policy's
`CloudPubSubDeadLetterSource*` attributes instead. All these names are reserved.

A publish request may be MAX_REQUEST bytes, the broker's `max_message_bytes` (the client library
refuses more before sending); `request_size` counts one message the way the library does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from google.pubsub_v1 import types

from slipstream.brokers import DeadLetter, Delivery
from slipstream.brokers.letters import short_reason, truncation, truncation_json, truncation_of
from slipstream.brokers.pubsub_resources import MAX_REQUEST
from slipstream.errors import MessageTooLarge

if TYPE_CHECKING:
    from google.pubsub_v1.types import ReceivedMessage

log = logging.getLogger("slipstream.brokers.pubsub")

DATASET, EVENT_ID = "dataset", "event_id"
REASON, DELIVERIES, PUBLISHED_AT, TRUNCATED = "reason", "deliveries", "published_at", "truncated"
POLICY_PREFIX = "CloudPubSubDeadLetterSource"
# `PublisherClient.publish` takes attributes as keyword arguments: these names are its own.
PUBLISH_PARAMETERS = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
MAX_ATTRIBUTE = 1024  # bytes in an attribute value

Message = tuple[bytes, dict[str, str]]  # data and attributes, ready to publish


def attributes_of(dataset: str, key: str, attributes: Mapping[str, str]) -> dict[str, str]:
    clash = PUBLISH_PARAMETERS.intersection(attributes)
    if clash:
        raise ValueError(f"attribute names {sorted(clash)} are reserved by the Pub/Sub client")
    return {**attributes, DATASET: dataset, EVENT_ID: key}


def request_size(topic: str, data: bytes, attributes: Mapping[str, str]) -> int:
    """Bytes of a publish request carrying this one message, as the client library counts."""
    message = types.PubsubMessage(data=data, attributes=attributes)
    return int(types.PublishRequest(topic=topic, messages=[message])._pb.ByteSize())


def check_size(topic: str, data: bytes, attributes: Mapping[str, str]) -> None:
    """Raise MessageTooLarge for a message Pub/Sub would refuse. Attributes take 128 KiB at
    most, so only data of more than half the limit is worth counting."""
    if (
        len(data) > MAX_REQUEST // 2
        and (size := request_size(topic, data, attributes)) > MAX_REQUEST
    ):
        raise MessageTooLarge(
            f"message {attributes.get(EVENT_ID)!r} takes {size} bytes with its attributes;"
            f" Pub/Sub accepts {MAX_REQUEST} at most"
        )


def dead_message(
    topic: str, dataset: str, delivery: Delivery, reason: str, deliveries: int
) -> Message:
    """The dead letter of `delivery` for `topic`; when the message and the letter's attributes
    do not fit in one request, the letter keeps the head of the data and a `truncated`."""
    attributes = attributes_of(dataset, delivery.key, delivery.attributes)
    attributes[REASON] = short_reason(reason).encode()[:MAX_ATTRIBUTE].decode(errors="ignore")
    attributes[DELIVERIES] = str(deliveries)
    attributes[PUBLISHED_AT] = f"{delivery.published_at:.6f}"
    data = delivery.data
    if request_size(topic, data, attributes) <= MAX_REQUEST:
        return data, attributes
    cut = truncation(data, "")
    attributes[TRUNCATED] = truncation_json(cut)
    over = request_size(topic, data, attributes) - MAX_REQUEST
    return data[: max(0, len(data) - over)], attributes


def delivery_of(item: ReceivedMessage, count: int) -> Delivery:
    message = item.message
    attributes = dict(message.attributes)
    key = attributes.pop(EVENT_ID, "") or message.message_id
    attributes.pop(DATASET, None)
    published_at = message.publish_time.timestamp()
    return Delivery(item.ack_id, key, bytes(message.data), count, published_at, attributes)


def letter_of(item: ReceivedMessage) -> DeadLetter:
    message = item.message
    attributes = message.attributes
    dead_at = message.publish_time.timestamp()
    key = attributes.get(EVENT_ID) or message.message_id
    if REASON in attributes:  # dead-lettered by the broker
        deliveries = int(_number(attributes.get(DELIVERIES), 0))
        reason = attributes[REASON]
        published_at = _number(attributes.get(PUBLISHED_AT), dead_at)
    else:  # moved by Pub/Sub's dead letter policy
        deliveries = int(_number(attributes.get(f"{POLICY_PREFIX}DeliveryCount"), 0))
        reason = f"delivered {deliveries} times without an ack (Pub/Sub dead letter policy)"
        published_at = _timestamp(attributes.get(f"{POLICY_PREFIX}TopicPublishTime"), dead_at)
    return DeadLetter(
        letter_id(dead_at, message.message_id),
        key,
        bytes(message.data),
        reason,
        deliveries,
        published_at,
        dead_at,
        truncation_of(attributes.get(TRUNCATED)),
    )


def replayed(dataset: str, item: ReceivedMessage) -> Message:
    """The dead letter as first published: without the dead letter attributes."""
    attributes = {
        k: v
        for k, v in item.message.attributes.items()
        if k not in (REASON, DELIVERIES, PUBLISHED_AT, TRUNCATED)
        and not k.startswith(POLICY_PREFIX)
    }
    key = attributes.pop(EVENT_ID, "") or item.message.message_id
    return bytes(item.message.data), attributes_of(dataset, key, attributes)


def replayable(
    topic: str, dataset: str, items: Sequence[ReceivedMessage]
) -> list[tuple[ReceivedMessage, Message]]:
    """Letters with the messages to publish again; one that would now be over the request limit
    (a message near 10 MB moved by the policy, given our attributes) stays, and is logged."""
    chosen = []
    for item in items:
        message = replayed(dataset, item)
        try:
            check_size(topic, *message)
        except MessageTooLarge as exc:
            log.warning(
                "dead letter %s stays: it cannot be published again (%s)",
                item.message.message_id,
                exc,
            )
            continue
        chosen.append((item, message))
    return chosen


def letter_id(dead_at: float, message_id: str) -> str:
    """`<µs since the epoch, 17 digits>-<message id>`: ordered by death, usable as a cursor
    even after the letter it names has been replayed."""
    return f"{round(dead_at * 1_000_000):017d}-{message_id}"


def letter_order(letter: str) -> tuple[int, int, str]:
    micros, _, message_id = letter.partition("-")
    if not micros.isdigit() or not message_id:
        raise ValueError(f"{letter!r} is not a dead letter id of the pubsub broker")
    return int(micros), int(message_id) if message_id.isdigit() else -1, message_id


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _timestamp(text: str | None, default: float) -> float:
    try:
        return datetime.fromisoformat(text).timestamp() if text else default
    except ValueError:
        return default
