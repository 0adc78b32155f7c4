"""What each broker can do, declared by the backend, and the settings every broker takes.

A broker declares one `BrokerCapabilities` (the class attribute `capabilities`); the runtime,
the API and the tests read it instead of knowing backends by name, and the broker itself rounds
its leases and checks its message sizes with it, so the declaration and the behaviour are one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from slipstream.config import Settings


@dataclass(frozen=True, slots=True)
class IdShape:
    """What a broker's dead letter ids look like, so the API refuses any other id with a 400
    before the broker parses it."""

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

# Who moves a message delivered `max_deliveries` times to the dead letters: the broker's own
# `pull` (counted by `buried()`), the service (SQS's redrive policy: `buried()` stays 0), or
# either, whichever sees it first (Pub/Sub: the broker, and the subscription's dead letter policy).
WornOutBy = Literal["broker", "service", "either"]


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """What one broker can do; the defaults are a broker without limits of its own."""

    dead_letter_ids: IdShape = ANY_ID
    # Whether `backlog()` is a real count. One that cannot count cheaply (Pub/Sub: only Cloud
    # Monitoring knows, minutes late) says 0; back-pressure then comes from publish failures.
    counts_backlog: bool = True
    # Largest message it publishes, data and attributes together; None: no limit of its own.
    max_message_bytes: int | None = None
    # Leases the service takes: at least `lease_floor` s, at most `lease_ceiling` s, in steps of
    # `lease_step` s (0: any duration). Nack delays are rounded the same way, without the floor.
    lease_floor: float = 0.0
    lease_ceiling: float | None = None
    lease_step: float = 0.0
    # The fewest deliveries the service's own dead-lettering takes (Pub/Sub's policy: 5); the
    # broker still dead-letters after SLIPSTREAM_MAX_DELIVERIES itself below that.
    min_deliveries: int = 1
    worn_out_by: WornOutBy = "broker"
    # Whether the API publishes a request's events to it as bundles (bundles.py): where one
    # message costs far more than its bytes and the backlog is counted in events.
    bundles: bool = False

    def lease_for(self, seconds: float) -> float:
        """The lease the service will hold for a lease of `seconds` asked for."""
        return max(self.lease_floor, self.delay_for(seconds))

    def delay_for(self, seconds: float) -> float:
        """The delay the service will hold a nacked message for, `seconds` asked for."""
        held = max(0.0, seconds)
        if self.lease_step > 0:
            held = math.ceil(held / self.lease_step) * self.lease_step
        return held if self.lease_ceiling is None else min(self.lease_ceiling, held)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The settings a broker takes (nothing else of `Settings` reaches one)."""

    lease_seconds: float = 30.0  # SLIPSTREAM_LEASE_SECONDS
    max_deliveries: int = 5  # SLIPSTREAM_MAX_DELIVERIES
    create_resources: bool = True  # SLIPSTREAM_CREATE_RESOURCES

    @classmethod
    def of(cls, settings: Settings) -> BrokerSettings:
        return cls(settings.lease_seconds, settings.max_deliveries, settings.create_resources)
