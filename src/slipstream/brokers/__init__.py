"""The broker contract: topics per dataset, leased deliveries, ack after commit, dead letters.

A broker is one module (or a few) picked by URL scheme from `BROKERS`. Its callers see it
through small roles, each naming what one caller needs: `BrokerLifecycle` (the runtime, publish,
check), `Publisher` (ingest, push, replay), `Consumer` (the worker), `DeadLetterAdmin` (the
dead letter routes), `Backlog` (the runtime's back-pressure). `Broker` is all of them, what the
registry makes. What a backend can do is declared in its `capabilities` (capabilities.py).

Every message has a non-empty key, stable across its redeliveries: the event id it was published
with, a fresh one when it was published with none (`Outgoing`), and for a message that reached the
broker without one (published straight onto it by another client) a key the broker derives from
its own identity of the message (`derived_key`, or the service's message id).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from slipstream.brokers.capabilities import (
    ANY_ID,
    ROW_ID,
    SEQUENCE_ID,
    TIMED_ID,
    BrokerCapabilities,
    BrokerSettings,
    IdShape,
)
from slipstream.events import new_event_id
from slipstream.registry import BackendEntry, Reachable, load_backend

if TYPE_CHECKING:
    from slipstream.config import Settings

__all__ = [
    "ANY_ID",
    "ROW_ID",
    "SEQUENCE_ID",
    "TIMED_ID",
    "BrokerCapabilities",
    "BrokerSettings",
    "IdShape",
]
VARIABLE = "SLIPSTREAM_BROKER_URL"


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


class Described(Protocol):
    """A broker whose caller reads what it can do."""

    @property
    def capabilities(self) -> BrokerCapabilities:
        """What this broker can do (capabilities.py)."""


class BrokerLifecycle(Reachable, Protocol):
    async def open(self, datasets: Sequence[str]) -> None:
        """Connect, and create each dataset's topic/queue when it is missing."""

    async def close(self) -> None: ...


class Publisher(Protocol):
    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        """Return only once every message is durable; raise BackendUnavailable otherwise.

        A message over `capabilities.max_message_bytes` raises MessageTooLarge, before any of
        the batch is sent."""


class Consumer(Protocol):
    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        """Lease up to `max_messages`, waiting at most `wait` seconds for the first one.

        A leased message comes back after the lease (visibility) time unless acked; one
        delivered `max_deliveries` times without an ack goes to the dead letters instead.
        """

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None: ...

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        """Give the messages back, visible again after `delay` seconds."""

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        """Move messages that can never be processed out of the way, keeping the reason.

        Never refused for its size: a letter too big for the broker keeps the head of the data
        and a `Truncation`. A long reason may be shortened (to `letters.MAX_REASON`)."""

    def buried(self, dataset: str) -> int:
        """Events `pull` moved to the dead letters for `max_deliveries` since this instance was
        made, a bundle counting for the events it carries (bundles.py); only part of them, or
        none, where `capabilities.worn_out_by` is not "broker"."""


class DeadLetterAdmin(Described, Protocol):
    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        """Dead letters oldest first, starting after the id `after`."""

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        """Publish dead letters again (all when `ids` is None); return how many."""


class Backlog(Described, Protocol):
    async def backlog(self, dataset: str) -> int:
        """Events published and not yet acked (leased ones included); always 0 where
        `capabilities.counts_backlog` is false. A bundle counts for its events where the broker
        publishes bundles (`capabilities.bundles`), as one message elsewhere."""


class Broker(BrokerLifecycle, Publisher, Consumer, DeadLetterAdmin, Backlog, Protocol):
    """Every role: what the registry makes, and what a process hands to each caller."""


BROKERS: dict[str, BackendEntry] = {
    "local": BackendEntry(
        "slipstream.brokers.local:LocalBroker", None, "local:///./data/queue.db", embedded=True
    ),
    "pubsub": BackendEntry("slipstream.brokers.pubsub:PubSubBroker", "gcp", "pubsub://PROJECT"),
    "nats": BackendEntry("slipstream.brokers.nats:NatsBroker", "nats", "nats://127.0.0.1:4222"),
    "sqs": BackendEntry("slipstream.brokers.sqs:SqsBroker", "aws", "sqs://us-east-1"),
}


def create_broker(settings: Settings) -> Broker:
    cls = load_backend(settings.broker_url, VARIABLE, BROKERS)
    broker: Broker = cls.from_url(settings.broker_url, BrokerSettings.of(settings))
    return broker


def capabilities_for(url: str) -> BrokerCapabilities:
    """What the broker of `url` declares, before one is made (NATS learns its message size
    limit from the server, once connected: read that one from the instance)."""
    capabilities: BrokerCapabilities = load_backend(url, VARIABLE, BROKERS).capabilities
    return capabilities
