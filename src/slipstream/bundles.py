"""Many events in one broker message: what the embedded broker's per-message cost is paid once for.

A request's events are published as bundles: the events' JSON texts, one per line (NDJSON), in
one message whose `bundle` attribute gives how many it carries. Each event keeps its own id
inside its text (the API writes a generated id into the event), so the store's idempotent write
works per event as before; an event that has no id (one the API refused, on its way to the
quarantine) is named by the bundle's key and its line, the same at every redelivery.

The worker opens any message with the attribute (`events_of`), whatever broker carried it; the
count in the attribute is only the brokers' backlog arithmetic (`count_of`), never trusted to
split the data. A bundle the store refuses is split back into single messages (worker.py), so a
bad event is dead-lettered alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

from slipstream.brokers import BrokerCapabilities, Delivery, Outgoing

BUNDLE = "bundle"  # attribute: the number of events the message's data carries, one per line
MAX_BUNDLE_BYTES = 1 << 20  # a bundle's data; smaller where the broker's messages are
MAX_BUNDLE_EVENTS = 1000  # so that a worker's batch holds a few bundles, not one huge one
_NAMESPACE = uuid.UUID("5f0c8f3e-6d1b-4a57-9a0e-3c2b1d7e8a90")
# Bytes a bundle leaves free under the broker's limit: the `bundle` attribute and the broker's
# own headers (a message id), and a dead letter's details (reason, key, attributes: at most a few
# KiB), so that a bundle dead-lettered whole is kept whole, never cut to its head.
ROOM_LEFT = 16 << 10


def pack(
    messages: Sequence[Outgoing], max_bytes: int | None = None, max_events: int = MAX_BUNDLE_EVENTS
) -> list[Outgoing]:
    """The messages as few bundles, in order; a message whose data holds a line break (a pushed
    event's pretty-printed text) or would not fit a bundle alone travels as it is.

    `max_bytes`: the broker's largest message (data and attributes), None when it has none."""
    limit = MAX_BUNDLE_BYTES if max_bytes is None else min(MAX_BUNDLE_BYTES, max_bytes)
    packed: list[Outgoing] = []
    group: list[Outgoing] = []
    size = 0
    room = 0
    for message in messages:
        if not group:
            room = limit - 2 * _attributes_size(message.attributes) - ROOM_LEFT
        length = len(message.data) + 1
        if b"\n" in message.data or length > room:
            _close(group, packed)
            group, size = [], 0
            packed.append(message)
            continue
        if group and (
            size + length > room
            or len(group) == max_events
            or message.attributes is not group[0].attributes
        ):
            _close(group, packed)
            group, size = [], 0
            room = limit - 2 * _attributes_size(message.attributes) - ROOM_LEFT
        group.append(message)
        size += length
    _close(group, packed)
    return packed


def for_broker(
    messages: Sequence[Outgoing], capabilities: BrokerCapabilities, batch_size: int
) -> Sequence[Outgoing]:
    """What to publish to a broker for `messages`: bundles where it takes them, each no larger
    than a worker's batch (SLIPSTREAM_BATCH_SIZE) nor than its messages; else the messages."""
    if not capabilities.bundles:
        return messages
    return pack(messages, capabilities.max_message_bytes, min(MAX_BUNDLE_EVENTS, batch_size))


def _close(group: list[Outgoing], packed: list[Outgoing]) -> None:
    if len(group) == 1:
        packed.append(group[0])
    elif group:
        key = str(uuid.uuid5(_NAMESPACE, "\n".join(m.key for m in group)))
        attributes = {**group[0].attributes, BUNDLE: str(len(group))}
        packed.append(Outgoing(key, b"\n".join(m.data for m in group), attributes))


def _attributes_size(attributes: Mapping[str, str]) -> int:
    return sum(len(k) + len(v.encode()) for k, v in attributes.items())


def count_of(attributes: Mapping[str, str]) -> int:
    """How many events a message says it carries: a bundle's count, 1 for any other message;
    a count written by some other client is held to 1..MAX_BUNDLE_EVENTS."""
    text = attributes.get(BUNDLE)
    if text is None:
        return 1
    try:
        count = int(text)
    except ValueError:
        return 1
    return min(max(count, 1), MAX_BUNDLE_EVENTS)


class EventsPerMessage:
    """Events per message lately seen by a broker instance (its publishes and pulls), for a
    broker that can count only messages to give its backlog in events, as an estimate."""

    DECAY = 0.9  # per batch seen: about the last 10 batches count

    def __init__(self) -> None:
        self._events = 0.0
        self._messages = 0.0

    def saw(self, attributes: Sequence[Mapping[str, str]]) -> None:
        if attributes:
            self._events = self._events * self.DECAY + sum(map(count_of, attributes))
            self._messages = self._messages * self.DECAY + len(attributes)

    def events(self, messages: int) -> int:
        """`messages` in events at the ratio seen lately (1 per message before any is seen)."""
        return round(messages * (self._events / self._messages if self._messages else 1.0))


def events_of(delivery: Delivery) -> list[tuple[str, bytes]]:
    """(key, data) of each event a delivery carries: the message itself, or a bundle's lines,
    each keyed `<bundle key>.<line>` (the key only names an event whose text has no id)."""
    if BUNDLE not in delivery.attributes:
        return [(delivery.key, delivery.data)]
    prefix = delivery.key + "."
    return [(prefix + str(i), line) for i, line in enumerate(delivery.data.split(b"\n"))]


def unbundled(delivery: Delivery, id_in: Callable[[bytes], str | None]) -> list[Outgoing]:
    """A bundle's events as single messages, for the worker to find the one the store refuses:
    each keyed by the id in its text (`id_in`), as the API would have published it alone."""
    attributes = {k: v for k, v in delivery.attributes.items() if k != BUNDLE}
    return [Outgoing(id_in(data) or key, data, attributes) for key, data in events_of(delivery)]
