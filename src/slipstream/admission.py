"""Admission by freshness: refuse ingest while a dataset's backlog would take longer to drain than
the freshness objective.

Under an unpaced flood a fixed bound on the backlog (`SLIPSTREAM_BACKLOG_LIMIT`) still lets the
backlog grow to a size that takes minutes to drain, and every event accepted meanwhile is stored
that late. Here the API measures how fast the workers drain each dataset and answers 503 with
`Retry-After` once the backlog is more than `SLIPSTREAM_ADMISSION_SECONDS` of draining, so what is
accepted stays fresh and producers hold the rest for a moment.

The drain rate comes from the broker's backlog, sampled by the runtime (runtime.py), and the
events this process published in between: drained = backlog before + published - backlog now.
Only intervals in which the backlog stayed above zero count, since only then is the rate the
workers' capacity rather than the arrival rate, and the rate is the last 10 s of those, trusted
once there are 3 s of them. Events published by other API replicas or
straight onto the broker are not seen here, which makes the estimate low: such a process refuses
earlier, never later. With no rate measured yet (no backlog has built, or the workers are down and
nothing drains) admission refuses nothing: the fixed bound alone holds, and the broker keeps
buffering through a worker outage as it should.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# The rate is what drained over the last WINDOW seconds in which a backlog stood, and is not
# trusted before MEASURED seconds of it: the first interval of a flood, before the workers' first
# batch is acked, drains next to nothing and would make any backlog look endless.
WINDOW = 10.0
MEASURED = 3.0
# Never refused below this many events waiting: a small backlog drains in a moment whatever the
# estimate says, and a start with no estimate yet must not turn producers away.
FLOOR = 10_000
MAX_RETRY_AFTER = 30  # seconds
BOUND_RETRY_AFTER = 2  # seconds, over the fixed bound: as the API's other 503s


@dataclass
class Refusal:
    message: str
    retry_after: int  # seconds


class DrainRate:
    """The measured drain rate of one dataset, and the admission decision it leads to."""

    def __init__(self, objective: float) -> None:
        self.objective = objective  # seconds of backlog admitted; 0: admission off
        self._intervals: deque[tuple[int, float]] = deque()  # (drained, seconds)
        self._seconds = 0.0
        self._backlog: int | None = None
        self._published = 0
        self._at: float | None = None

    def published(self, count: int) -> None:
        self._published += count

    def observe(self, backlog: int, now: float) -> None:
        """A sample of the broker's backlog taken at `now` (monotonic seconds)."""
        before, at, published = self._backlog, self._at, self._published
        self._backlog, self._at, self._published = backlog, now, 0
        if before is None or at is None or now <= at or before == 0 or backlog == 0:
            return
        self._intervals.append((max(before + published - backlog, 0), now - at))
        self._seconds += now - at
        while self._seconds - self._intervals[0][1] >= WINDOW:
            self._seconds -= self._intervals.popleft()[1]

    @property
    def per_second(self) -> float | None:
        """Events drained per second while a backlog stood; None until measured long enough."""
        if self._seconds < MEASURED:
            return None
        return sum(drained for drained, _ in self._intervals) / self._seconds

    def refusal(self, dataset: str, backlog: int) -> Refusal | None:
        rate = self.per_second
        if self.objective <= 0 or not rate:
            return None
        admitted = max(FLOOR, rate * self.objective)
        if backlog <= admitted:
            return None
        wait = math.ceil((backlog - admitted) / rate)
        return Refusal(
            f"dataset {dataset!r} has {backlog} events waiting, {backlog / rate:.0f} s of "
            f"draining at the {rate:.0f} events/s measured, over the {self.objective:g} s "
            "admitted (SLIPSTREAM_ADMISSION_SECONDS)",
            min(max(wait, 1), MAX_RETRY_AFTER),
        )
