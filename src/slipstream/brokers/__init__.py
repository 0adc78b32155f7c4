"""The broker contract: topics per dataset, leased deliveries, ack after commit, dead letters.

A broker is one module behind `Broker`, picked by URL scheme from `BROKERS`. The worker and the
API see only this Protocol.

Every message has a non-empty key, stable across its redeliveries: the event id it was published
with, a fresh one when it was published with none (`Outgoing`), and for a message that reached the
broker without one (published straight onto it by another client) a key the broker derives from
its own identity of the message (`derived_key`, or the service's message id).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from slipstream.events import new_event_id
from slipstream.registry import BackendEntry, load_backend

if TYPE_CHECKING:
    from slipstream.config import Settings


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: `key` is the event id, used for deduplication where supported.

    An empty key is replaced by a fresh one (a UUIDv7, like the ids the API gives events), so
    that no message reaches a broker without a key of its own: keys name quarantine rows and dead
    letters, and an empty one would merge unrelated messages there."""

    key: str
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", new_event_id())


@dataclass(slots=True)
class Delivery:
    """A leased message. `handle` is opaque to everyone but the broker that made it."""

    handle: str
    key: str
    data: bytes
    delivery_count: int
    published_at: float  # seconds since the epoch, when the broker first accepted the message
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Truncation:
    """How to recognise the whole of a message whose dead letter keeps only the head of its data,
    because the whole would not fit in one message of the broker with the letter's details."""

    size: int  # bytes of the whole data
    sha256: str  # hex digest of the whole data
    source: str  # where the broker had the message (stream and sequence…), "" when it has no name


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    key: str
    data: bytes  # the message's data; only its head when `truncated` is set
    reason: str
    deliveries: int
    published_at: float
    dead_at: float
    truncated: Truncation | None = None


def derived_key(published_at: float, *identity: str) -> str:
    """A key for a message that reached the broker without one, the same at every redelivery.

    UUIDv7-shaped, like the ids the API generates: the time part is the publish time (so these
    ids sort with the others), the rest a digest of the broker's own identity of the message (its
    stream and sequence, say), so two messages never share a key and one message keeps its own.
    """
    digest = int.from_bytes(hashlib.sha256("\x1f".join(identity).encode()).digest()[:10], "big")
    millis = int(published_at * 1000) & (2**48 - 1)
    rand_a, rand_b = (digest >> 62) & 0xFFF, digest & (2**62 - 1)
    return str(uuid.UUID(int=millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b))


def counts_backlog(broker: Broker) -> bool:
    """Whether `backlog()` is a real count. A broker that cannot count cheaply (Pub/Sub: only
    Cloud Monitoring knows, minutes late) declares `counts_backlog = False`; back-pressure then
    comes from publish failures alone."""
    return bool(getattr(broker, "counts_backlog", True))


@dataclass(frozen=True, slots=True)
class IdShape:
    """What a broker's dead letter ids look like (a capability, like `counts_backlog`), so the
    API refuses any other id with a 400 before the broker parses it."""

    pattern: str  # a regular expression the whole id matches (ASCII)
    description: str  # for the message that refuses an id
    largest: int | None = None  # for integer ids: the largest one the broker can hold

    def admits(self, text: str) -> bool:
        if re.fullmatch(self.pattern, text, re.ASCII) is None:
            return False
        return self.largest is None or int(text) <= self.largest


ANY_ID = IdShape(r"(?s).+", "any text")
# The local broker's dead letters are rows of a SQLite table, named by their (64-bit) row id.
ROW_ID = IdShape(r"[1-9][0-9]{0,18}", "a positive integer (the dead letter's number)", 2**63 - 1)
# NATS names them by their sequence in the dead letter stream (64 bits, unsigned).
SEQUENCE_ID = IdShape(
    r"[1-9][0-9]{0,19}", "a positive integer (the dead letter's stream sequence)", 2**64 - 1
)
# Pub/Sub and SQS: `<µs since the epoch, 17 digits>-<message id>` (their letter_id).
TIMED_ID = IdShape(
    r"[0-9]{1,20}-[!-~]{1,256}", "<microseconds>-<message id>, as the dead letter list shows it"
)


def dead_letter_ids(broker: Broker) -> IdShape:
    """The shape of `broker`'s dead letter ids (ANY_ID for a broker that declares none)."""
    shape: IdShape = getattr(broker, "dead_letter_ids", ANY_ID)
    return shape


class Broker(Protocol):
    async def open(self, datasets: Sequence[str]) -> None:
        """Connect, and create each dataset's topic/queue when it is missing."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return when reachable; raise BackendUnavailable otherwise."""

    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        """Return only once every message is durable; raise BackendUnavailable otherwise."""

    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        """Lease up to `max_messages`, waiting at most `wait` seconds for the first one.

        A leased message comes back after the lease (visibility) time unless acked; one
        delivered `max_deliveries` times without an ack goes to the dead letters instead.
        """

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None: ...

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        """Give the messages back, visible again after `delay` seconds."""

    def buried(self, dataset: str) -> int:
        """Messages `pull` moved to the dead letters for `max_deliveries` since this instance was
        made (0 where the service moves them itself, out of the broker's sight)."""

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        """Move messages that can never be processed out of the way, keeping the reason.

        Never refused for its size: a letter too big for the broker keeps the head of the data
        and a `Truncation`. A long reason may be shortened (to `letters.MAX_REASON`)."""

    async def backlog(self, dataset: str) -> int:
        """Messages published and not yet acked (leased ones included)."""

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        """Dead letters oldest first, starting after the id `after`."""

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        """Publish dead letters again (all when `ids` is None); return how many."""


BROKERS: dict[str, BackendEntry] = {
    "local": BackendEntry(
        "slipstream.brokers.local:LocalBroker", None, "local:///./data/queue.db", embedded=True
    ),
    "pubsub": BackendEntry("slipstream.brokers.pubsub:PubSubBroker", "gcp", "pubsub://PROJECT"),
    "nats": BackendEntry("slipstream.brokers.nats:NatsBroker", "nats", "nats://127.0.0.1:4222"),
    "sqs": BackendEntry("slipstream.brokers.sqs:SqsBroker", "aws", "sqs://us-east-1"),
}


def create_broker(settings: Settings) -> Broker:
    cls = load_backend(settings.broker_url, "SLIPSTREAM_BROKER_URL", BROKERS)
    broker: Broker = cls.from_url(settings.broker_url, settings)
    return broker
