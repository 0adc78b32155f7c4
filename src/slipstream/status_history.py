"""The last hour of the status page's figures: snapshots of `Metrics` in a fixed-size ring.

Every step the sampler reads the collectors' current values (cumulative counters, histogram
buckets, gauges) into a `Snapshot`. Rates and quantiles are computed on demand from the deltas
between neighbouring snapshots, the way Prometheus' `rate()` and `histogram_quantile()` do, so
the page needs no Prometheus server.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

from slipstream.metrics import Metrics

STEP_SECONDS = 5.0
WINDOW_SECONDS = 3600.0
# Matches the api-availability SLO in observability/slo/slos.yaml (a unit test keeps them equal):
# the objective, and the routes whose 5xx answers spend its budget.
AVAILABILITY_OBJECTIVE = 0.999
AVAILABILITY_ROUTES = re.compile(r"/v1/.*|/push/.*")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Cumulative values at one instant, summed over datasets."""

    at: float  # wall clock, seconds since the epoch: the chart's x axis
    clock: float  # monotonic: what rates divide by
    ingested: float
    written: float
    requests: float  # on the availability routes
    server_errors: float  # 5xx among them
    freshness_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)
    backlog: float


@dataclass(frozen=True, slots=True)
class Point:
    """The figures for the interval that ends at `at`; None where the interval has no data."""

    at: float
    ingested_per_s: float
    written_per_s: float
    freshness_p50: float | None
    freshness_p99: float | None
    backlog: float
    error_rate: float | None
    budget_spent: float | None


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative (upper bound, count) buckets, as Prometheus estimates it.

    Linear interpolation inside the bucket that holds the rank; a rank in the +Inf bucket
    answers the highest finite bound. None when the buckets hold no observations.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _samples(collector: MetricWrapperBase, suffix: str) -> Iterable[tuple[dict[str, str], float]]:
    for family in collector.collect():
        for sample in family.samples:
            if sample.name == family.name + suffix:
                yield sample.labels, sample.value


def _total(collector: MetricWrapperBase, suffix: str = "_total") -> float:
    return sum(value for _, value in _samples(collector, suffix))


def _buckets(collector: MetricWrapperBase) -> tuple[tuple[float, float], ...]:
    counts: dict[float, float] = {}
    for labels, value in _samples(collector, "_bucket"):
        bound = float(labels["le"])
        counts[bound] = counts.get(bound, 0.0) + value
    return tuple(sorted(counts.items()))


def snapshot(metrics: Metrics) -> Snapshot:
    requests = errors = 0.0
    for labels, value in _samples(metrics.http_requests, "_total"):
        if AVAILABILITY_ROUTES.fullmatch(labels["route"]):
            requests += value
            if labels["code"].startswith("5"):
                errors += value
    return Snapshot(
        at=time.time(),
        clock=time.monotonic(),
        ingested=_total(metrics.events_ingested),
        written=_total(metrics.events_written),
        requests=requests,
        server_errors=errors,
        freshness_buckets=_buckets(metrics.freshness),
        backlog=_total(metrics.backlog, ""),
    )


def _bucket_delta(
    new: Sequence[tuple[float, float]], old: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    before = dict(old)
    return [(bound, count - before.get(bound, 0.0)) for bound, count in new]


def point(previous: Snapshot, current: Snapshot, window_start: Snapshot) -> Point:
    """The figures between two snapshots; the budget counts from the window's first snapshot."""
    seconds = max(current.clock - previous.clock, 1e-9)
    fresh = _bucket_delta(current.freshness_buckets, previous.freshness_buckets)
    requests = current.requests - previous.requests
    window_requests = current.requests - window_start.requests
    window_errors = current.server_errors - window_start.server_errors
    allowed = window_requests * (1 - AVAILABILITY_OBJECTIVE)
    return Point(
        at=current.at,
        ingested_per_s=max(current.ingested - previous.ingested, 0.0) / seconds,
        written_per_s=max(current.written - previous.written, 0.0) / seconds,
        freshness_p50=histogram_quantile(0.50, fresh),
        freshness_p99=histogram_quantile(0.99, fresh),
        backlog=current.backlog,
        error_rate=(current.server_errors - previous.server_errors) / requests
        if requests > 0
        else None,
        budget_spent=window_errors / allowed if allowed > 0 else None,
    )


class StatusHistory:
    """A ring of the last `capacity` snapshots (an hour at a 5 s step), sampled by `run()`."""

    def __init__(
        self,
        metrics: Metrics,
        step: float = STEP_SECONDS,
        capacity: int = round(WINDOW_SECONDS / STEP_SECONDS),
    ) -> None:
        self.metrics = metrics
        self.step = step
        self.capacity = capacity
        # A deque with maxlen is a ring buffer: O(1) append, the oldest entry falls off.
        self._snapshots: deque[Snapshot] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._snapshots)

    def append(self, snap: Snapshot) -> None:
        self._snapshots.append(snap)

    def sample(self) -> Snapshot:
        snap = snapshot(self.metrics)
        self.append(snap)
        return snap

    def snapshots(self) -> list[Snapshot]:
        return list(self._snapshots)

    def points(self) -> list[Point]:
        """One point per interval between neighbouring snapshots, oldest first."""
        snaps = self.snapshots()
        return [point(a, b, snaps[0]) for a, b in itertools.pairwise(snaps)]

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.step)
