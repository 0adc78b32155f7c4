"""Prometheus series, all prefixed slipstream_, on an injected registry (tests make their own).

Label sets stay bounded: dataset names come from the datasets file, routes are templates,
reasons are a fixed vocabulary — never ids or raw paths.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000)

# Reasons an event is quarantined or dead-lettered; a closed set keeps label values bounded.
QUARANTINE_REASONS = ("invalid_json", "schema")
DEAD_LETTER_REASONS = ("terminal_error", "max_deliveries")


def observe_times(histogram: Histogram, amount: float, times: int) -> None:
    """`histogram.observe(amount)` (a histogram without labels, or a family's child) done `times` times, in one step: the events of one bundle
    share their age, and observing each of 1,000 alone cost the worker's loop about a sixth of
    its time at full ingest (docs/performance.md). prometheus_client's histogram has no
    weighted observe; this adds to the same bucket and sum its `observe` would (its
    `_upper_bounds`, `_buckets` and `_sum`; tests/unit/test_metrics_observe.py holds the two
    equal)."""
    if times < 1:
        return
    histogram._sum.inc(amount * times)
    histogram._buckets[bisect_left(histogram._upper_bounds, amount)].inc(times)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._request_series: dict[tuple[str, str, int, str], tuple[Counter, Histogram]] = {}
        self._add_http_series(self.registry)
        self._add_event_series(self.registry)
        self._add_worker_series(self.registry)
        self._add_backend_series(self.registry)

    def _add_http_series(self, r: CollectorRegistry) -> None:
        """What the API answered, and how fast."""
        self.http_requests = Counter(
            "slipstream_http_requests",
            "HTTP requests answered.",
            ["route", "method", "code", "dataset"],
            registry=r,
        )
        self.http_latency = Histogram(
            "slipstream_http_request_duration_seconds",
            "HTTP request latency.",
            ["route", "method", "dataset"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def _add_event_series(self, r: CollectorRegistry) -> None:
        """Events on their way: ingested, published, written, quarantined, dead-lettered."""
        self.events_ingested = Counter(
            "slipstream_events_ingested",
            "Events accepted by the API or publish command.",
            ["dataset"],
            registry=r,
        )
        self.events_rejected = Counter(
            "slipstream_events_rejected",
            "Events refused at ingest (sent on to quarantine).",
            ["dataset"],
            registry=r,
        )
        self.events_published = Counter(
            "slipstream_events_published",
            "Messages made durable on the broker.",
            ["dataset"],
            registry=r,
        )
        self.events_written = Counter(
            "slipstream_events_written",
            "Events newly written to the store.",
            ["dataset"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "slipstream_events_duplicate",
            "Redelivered events the store already had.",
            ["dataset"],
            registry=r,
        )
        self.events_quarantined = Counter(
            "slipstream_events_quarantined",
            "Events quarantined by the worker.",
            ["dataset", "reason"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "slipstream_events_dead_lettered",
            "Messages dead-lettered: by the worker (terminal_error), or by the broker's pulls after"
            " max deliveries (max_deliveries; not SQS's redrive nor Pub/Sub's own policy).",
            ["dataset", "reason"],
            registry=r,
        )
        self.push_messages = Counter(
            "slipstream_push_messages",
            "Messages pushed to /push/* by source (pubsub, sns) and outcome.",
            ["dataset", "source", "outcome"],
            registry=r,
        )

    def _add_worker_series(self, r: CollectorRegistry) -> None:
        """The worker's batches and writes, and how fresh the store is."""
        self.store_errors = Counter(
            "slipstream_store_errors",
            "Failed store writes by class.",
            ["dataset", "kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "slipstream_batch_size",
            "Events per worker batch.",
            ["dataset"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.write_latency = Histogram(
            "slipstream_store_write_duration_seconds",
            "Duration of one batch write.",
            ["dataset"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "slipstream_freshness_seconds",
            "From broker publish to queryable in the store.",
            ["dataset"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "slipstream_worker_inflight_batches",
            "Batches a worker holds leased right now.",
            registry=r,
        )

    def _add_backend_series(self, r: CollectorRegistry) -> None:
        """The broker's backlog, and whether each backend answers."""
        self.backlog = Gauge(
            "slipstream_broker_backlog",
            "Events on the broker not yet acked (a bundle counts for its events).",
            ["dataset"],
            registry=r,
        )
        self.backend_up = Gauge(
            "slipstream_backend_up",
            "1 when the last ping of the broker or store answered, else 0.",
            ["component"],
            registry=r,
        )

    def observe_request(
        self, route: str, method: str, status: int, dataset: str, seconds: float
    ) -> None:
        """Count and time one HTTP request. The series' children are looked up once per label
        set (bounded, see the module doc): `labels()` costs more than the increment it leads to,
        and this runs for every request."""
        key = (route, method, status, dataset)
        children = self._request_series.get(key)
        if children is None:
            children = self._request_series[key] = (
                self.http_requests.labels(route, method, str(status), dataset),
                self.http_latency.labels(route, method, dataset),
            )
        children[0].inc()
        children[1].observe(seconds)

    def start_dataset(self, dataset: str) -> None:
        """Create each dataset's series at zero, so rates and alerts work from the first scrape."""
        for counter in (
            self.events_ingested,
            self.events_rejected,
            self.events_published,
            self.events_written,
            self.events_duplicate,
        ):
            counter.labels(dataset)
        for reason in QUARANTINE_REASONS:
            self.events_quarantined.labels(dataset, reason)
        for reason in DEAD_LETTER_REASONS:
            self.events_dead_lettered.labels(dataset, reason)
        for kind in ("transient", "terminal"):
            self.store_errors.labels(dataset, kind)
        self.backlog.labels(dataset)
        for histogram in (self.batch_size, self.write_latency, self.freshness):
            histogram.labels(dataset)
