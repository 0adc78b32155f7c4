"""NATS messages of the `nats://` broker ↔ Slipstream's Delivery and DeadLetter.

A message is its data and headers: `Nats-Msg-Id` = the key when Slipstream published it (a
replayed dead letter carries `Slipstream-Key` and `Slipstream-Published-At` as well), the
message's attributes as the other headers. One published by another client may have no headers
at all: its key is then derived from its stream and stream sequence (`derived_key`).

The server counts headers and data against its `max_payload` (1 MiB by default) and closes the
connection of a client that sends more, so sizes are checked here before anything is sent.

A dead letter carries the message's data as it came, and the rest in the header
`Slipstream-Letter` (ASCII JSON: key, reason, deliveries, published_at, attributes, and
`truncated` when only the head of the data fits). Letters written before that format are one JSON
document with the data in base64; both are read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.js import api

from slipstream.brokers import DeadLetter, Delivery, Truncation, derived_key
from slipstream.brokers.letters import short_reason, truncation

if TYPE_CHECKING:
    from slipstream.brokers.nats_resources import Topic

MSG_ID, KEY, PUBLISHED = "Nats-Msg-Id", "Slipstream-Key", "Slipstream-Published-At"
LETTER = "Slipstream-Letter"
RESERVED = ("nats-", "slipstream-")  # header prefixes that are not message attributes
WORN = "delivered {} times without an ack (lease expired or nacked each time)"
MAX_LETTER_KEY = 1024  # characters of a key a letter keeps (a longer one came from elsewhere)
HEADER_LINE = len(b"NATS/1.0\r\n") + len(b"\r\n")  # the status line and the blank line closing
SEQUENCE_DIGITS = 20  # the widest stream sequence (uint64), for sizes computed in advance
LAST_SECOND = 253_402_300_800  # 10000-01-01T00:00:00Z, seconds since the epoch

Item = tuple[str, bytes, dict[str, str] | None]  # subject, data, headers


def header_bytes(headers: Mapping[str, str] | None) -> int:
    """Bytes of the header block as nats-py writes it (values stripped, line breaks blanked)."""
    if not headers:
        return 0
    return HEADER_LINE + sum(
        len(name.strip().encode()) + len(value.strip().encode()) + 4  # ": " and CRLF
        for name, value in headers.items()
    )


def wire_size(data: bytes, headers: Mapping[str, str] | None) -> int:
    """What the server counts against `max_payload`."""
    return len(data) + header_bytes(headers)


def delivery_of(msg: Msg) -> Delivery:
    headers, meta = dict(msg.headers or {}), msg.metadata
    stored = meta.timestamp.timestamp()
    published = _number(headers.pop(PUBLISHED, None)) or stored
    key = headers.pop(KEY, "") or headers.get(MSG_ID, "").strip()
    if not key:  # published by another client without an id
        key = derived_key(stored, meta.stream, str(meta.sequence.stream))
    attributes = {k: v for k, v in headers.items() if not k.lower().startswith(RESERVED)}
    return Delivery(msg.reply, key, msg.data, meta.num_delivered, published, attributes)


def stream_sequence(handle: str) -> str:
    """The stream sequence in an ack subject: token 5, or 7 when it names a domain."""
    tokens = handle.split(".")
    return tokens[5] if len(tokens) == 9 else tokens[7]


def letter(topic: Topic, delivery: Delivery, count: int, reason: str, max_payload: int) -> Item:
    """The dead letter of `delivery`, sized to fit `max_payload` now and when replayed."""
    stream, dlq, sequence = topic.stream, topic.dlq, stream_sequence(delivery.handle)
    details: dict[str, Any] = {
        "key": delivery.key[:MAX_LETTER_KEY],
        "reason": short_reason(reason),
        "deliveries": count,
        "published_at": delivery.published_at,
        "attributes": delivery.attributes,
    }
    headers = {MSG_ID: f"dead-{stream}-{sequence}", LETTER: _ascii(details)}
    room = max_payload - _overhead(headers, details, dlq)
    if len(delivery.data) > room:
        whole = truncation(delivery.data, f"{stream}:{sequence}")
        details["truncated"] = {"size": whole.size, "sha256": whole.sha256, "source": whole.source}
        headers[LETTER] = _ascii(details)
        room = max_payload - _overhead(headers, details, dlq)
        if room < 0:  # attributes that big came from elsewhere: the data matters more
            details["attributes"] = {}
            headers[LETTER] = _ascii(details)
            room = max_payload - _overhead(headers, details, dlq)
    return topic.dlq_subject, delivery.data[: max(0, room)], headers


def _overhead(headers: dict[str, str], details: dict[str, Any], dlq: str) -> int:
    """Header bytes of the letter, or of its replay if more: a replayed letter must fit too."""
    replay = _replay_headers(details, f"replay-{dlq}-{'9' * SEQUENCE_DIGITS}")
    return max(header_bytes(headers), header_bytes(replay))


def _replay_headers(details: Mapping[str, Any], msg_id: str) -> dict[str, str]:
    ours = {MSG_ID: msg_id, KEY: details["key"], PUBLISHED: repr(details["published_at"])}
    return {**details["attributes"], **ours}


def _details(raw: api.RawStreamMsg) -> tuple[dict[str, Any], bytes]:
    """A letter's details and data, in either format."""
    header = (raw.headers or {}).get(LETTER)
    if header is not None:
        return json.loads(header), raw.data or b""
    details = json.loads(raw.data or b"{}")  # the format before the header
    return details, base64.b64decode(details.pop("data"))


def dead_letter_of(raw: api.RawStreamMsg) -> DeadLetter:
    details, data = _details(raw)
    cut = details.get("truncated")
    return DeadLetter(
        id=str(raw.seq),
        key=details["key"],
        data=data,
        reason=details["reason"],
        deliveries=details["deliveries"],
        published_at=details["published_at"],
        dead_at=raw.time.timestamp() if raw.time else time.time(),
        truncated=Truncation(cut["size"], cut["sha256"], cut["source"]) if cut else None,
    )


def replay_item(raw: api.RawStreamMsg, subject: str, dlq: str) -> Item:
    """The letter as first published: its key, attributes and publish time, with a fresh
    `Nats-Msg-Id` so that the server does not take it for a duplicate of the original."""
    details, data = _details(raw)
    return subject, data, _replay_headers(details, f"replay-{dlq}-{raw.seq}")


def _ascii(value: Any) -> str:
    """JSON with no byte outside ASCII and no line break: safe as a header value."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _number(text: str | None) -> float:
    """A header's time in seconds, or 0 when absent, not a number or not a time Python can hold
    (a header set by another client)."""
    with contextlib.suppress(TypeError, ValueError):
        number = float(text or 0)
        return number if 0 <= number < LAST_SECOND else 0.0
    return 0.0
