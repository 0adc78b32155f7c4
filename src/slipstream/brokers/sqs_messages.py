"""SQS/SNS messages of the `sqs://` broker ↔ Slipstream's Outgoing, Delivery and DeadLetter.

On the wire a message is a text body and at most 10 String message attributes (SNS drops a raw
delivery with more, without a word):
- the body is the data when it is UTF-8 text SQS accepts; otherwise base64, marked by the
  attribute `body_encoding=base64` (`empty` for no data: SQS refuses an empty body);
- `event_id` carries the key;
- the message's own attributes go as attributes of their own when they fit (valid names,
  non-empty values, within the count); otherwise all of them as one JSON object in
  `attributes_json`;
- a dead letter sent by the broker adds `reason`, `deliveries`, `published_at` and `dead_at`,
  and `truncated` (JSON: size and sha256 of the whole data) when only the head of the data fits.
A message's own attribute that uses one of these reserved names is always sent in JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slipstream.brokers import DeadLetter, Delivery
from slipstream.brokers.letters import (
    short_reason,
    text_head,
    truncation,
    truncation_json,
    truncation_of,
)
from slipstream.brokers.sqs_resources import MAX_BYTES
from slipstream.errors import MessageTooLarge

EVENT_ID, ENCODING, PACKED = "event_id", "body_encoding", "attributes_json"
REASON, DELIVERIES, PUBLISHED_AT, DEAD_AT = "reason", "deliveries", "published_at", "dead_at"
TRUNCATED = "truncated"
RESERVED = frozenset(
    {EVENT_ID, ENCODING, PACKED, REASON, DELIVERIES, PUBLISHED_AT, DEAD_AT, TRUNCATED}
)
MAX_ATTRIBUTES = 10  # per message, SQS and SNS raw delivery alike
# Characters SQS accepts in a body or a String attribute (XML 1.0 characters).
REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ATTRIBUTE_NAME = re.compile(r"(?!\.)(?!.*\.\.)(?!(?i:aws\.|amazon\.))[A-Za-z0-9_.-]{1,256}(?<!\.)")

Message = dict[str, Any]  # one message of a ReceiveMessage response


@dataclass(frozen=True)
class Entry:
    """A message ready for SendMessageBatch or PublishBatch (both take this shape)."""

    key: str
    body: str
    attributes: dict[str, str]

    @property
    def size(self) -> int:
        """Bytes as SQS counts them: the body, and each attribute's name, type and value."""
        return len(self.body.encode()) + sum(
            len(name.encode()) + len("String") + len(value.encode())
            for name, value in self.attributes.items()
        )

    def wire(self) -> dict[str, dict[str, str]]:
        return {n: {"DataType": "String", "StringValue": v} for n, v in self.attributes.items()}


def entry(key: str, data: bytes, attributes: Mapping[str, str], **extra: str) -> Entry:
    """The wire form of one message; `extra` are the broker's own (reserved) attributes."""
    result = _entry(key, data, attributes, extra)
    if result.size > MAX_BYTES:
        raise MessageTooLarge(
            f"message {key!r} takes {result.size} bytes with its attributes; SQS and SNS accept"
            f" {MAX_BYTES} at most"
        )
    return result


def _entry(key: str, data: bytes, attributes: Mapping[str, str], extra: dict[str, str]) -> Entry:
    body, encoding = _body(data)
    mine = {EVENT_ID: key, **extra}
    if encoding is not None:
        mine[ENCODING] = encoding
    own = dict(attributes)
    if own and (len(mine) + len(own) > MAX_ATTRIBUTES or not all(map(_fits, own.items()))):
        own = {PACKED: json.dumps(own, separators=(",", ":"))}
    return Entry(key, body, {**own, **mine})


def _body(data: bytes) -> tuple[str, str | None]:
    if not data:
        return "empty", "empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or REFUSED.search(text):
        return base64.b64encode(data).decode("ascii"), "base64"
    return text, None


def _fits(item: tuple[str, str]) -> bool:
    name, value = item
    return (
        name not in RESERVED
        and ATTRIBUTE_NAME.fullmatch(name) is not None
        and bool(value)
        and REFUSED.search(value) is None
    )


def strings(message: Message) -> dict[str, str]:
    """A received message's String attributes."""
    return {
        name: str(value["StringValue"])
        for name, value in message.get("MessageAttributes", {}).items()
        if "StringValue" in value
    }


def data_of(message: Message, attributes: Mapping[str, str]) -> bytes:
    body: str = message.get("Body", "")
    encoding = attributes.get(ENCODING)
    if encoding == "base64":
        with contextlib.suppress(ValueError):  # binascii.Error: not ours after all
            return base64.b64decode(body, validate=True)
    if encoding == "empty":
        return b""
    return body.encode("utf-8")


def own_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """The message's own attributes, without the broker's."""
    if PACKED in attributes:
        try:
            packed = json.loads(attributes[PACKED])
        except ValueError:
            packed = None
        if isinstance(packed, dict):
            return {str(k): str(v) for k, v in packed.items()}
    return {k: v for k, v in attributes.items() if k not in RESERVED}


def sent_at(message: Message) -> float:
    """When SQS first accepted the message (kept through redrive), in seconds."""
    return int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000


def delivery_of(message: Message) -> Delivery:
    attributes = strings(message)
    return Delivery(
        handle=message["ReceiptHandle"],
        key=attributes.get(EVENT_ID) or message["MessageId"],
        data=data_of(message, attributes),
        delivery_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
        published_at=sent_at(message),
        attributes=own_attributes(attributes),
    )


def dead_entry(delivery: Delivery, reason: str, dead_at: float) -> Entry:
    """The dead letter of `delivery`; never over MAX_BYTES: when the message and the letter's
    attributes do not fit together, the letter keeps the head of the data and a `truncated`."""
    key, data, attributes = delivery.key, delivery.data, delivery.attributes
    extra = {
        REASON: short_reason(reason),
        DELIVERIES: str(delivery.delivery_count),
        PUBLISHED_AT: f"{delivery.published_at:.6f}",
        DEAD_AT: f"{dead_at:.6f}",
    }
    whole = _entry(key, data, attributes, extra)
    if whole.size <= MAX_BYTES:
        return whole
    cut = truncation(data, "")
    extra[TRUNCATED] = truncation_json(cut)
    text = _body(data)[1] is None
    probe = _entry(key, b"a" if text else b"\x00", attributes, extra)
    room = MAX_BYTES - (probe.size - len(probe.body.encode()))
    head = text_head(data, room) if text else data[: room // 4 * 3]
    return _entry(key, head, attributes, extra)


def letter_of(message: Message, max_receives: int) -> DeadLetter:
    attributes = strings(message)
    sent = sent_at(message)
    if REASON in attributes:  # dead-lettered by the broker
        reason = attributes[REASON]
        deliveries = int(_number(attributes.get(DELIVERIES), 0))
        published_at = _number(attributes.get(PUBLISHED_AT), sent)
        dead_at = _number(attributes.get(DEAD_AT), sent)
    else:  # moved by the queue's redrive policy: SQS keeps no time of the move
        reason = f"received {max_receives} times without being deleted (SQS redrive)"
        deliveries = max_receives
        published_at = dead_at = sent
    return DeadLetter(
        id=letter_id(dead_at, message["MessageId"]),
        key=attributes.get(EVENT_ID) or message["MessageId"],
        data=data_of(message, attributes),
        reason=reason,
        deliveries=deliveries,
        published_at=published_at,
        dead_at=dead_at,
        truncated=truncation_of(attributes.get(TRUNCATED)),
    )


def replayed(message: Message) -> Entry:
    """The dead letter as first published, without the dead letter attributes."""
    attributes = strings(message)
    key = attributes.get(EVENT_ID) or message["MessageId"]
    return entry(key, data_of(message, attributes), own_attributes(attributes))


def letter_id(dead_at: float, message_id: str) -> str:
    """`<µs since the epoch, 17 digits>-<message id>`: ordered by death, usable as a cursor
    even after the letter it names has been replayed."""
    return f"{round(dead_at * 1_000_000):017d}-{message_id}"


def letter_order(letter: str) -> tuple[int, str]:
    micros, _, message_id = letter.partition("-")
    if not micros.isdigit() or not message_id:
        raise ValueError(f"{letter!r} is not a dead letter id of the sqs broker")
    return int(micros), message_id


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default
