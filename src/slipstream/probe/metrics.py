"""The probe's metrics, on their own registry, served for scraping or pushed to a Pushgateway.

The values are kept as plain numbers rather than prometheus_client Counters so that a run can
start from the values its group last pushed: a Pushgateway keeps only the last push, and a probe
run as a CronJob starts from zero each time, so without this its counters would never grow and
rate() over them would read zero.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator

import httpx
from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from slipstream.probe.run import ProbeResult

RUNS = "slipstream_probe_runs"  # exposed as slipstream_probe_runs_total
ROUND_TRIP = "slipstream_probe_round_trip_seconds"
LAST_SUCCESS = "slipstream_probe_last_success_timestamp_seconds"
RESULTS = ("ok", "mismatch", "failed")
# Publish → readable: tens of milliseconds on the embedded store, seconds on BigQuery.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProbeMetrics(Collector):
    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.runs = dict.fromkeys(RESULTS, 0.0)
        self.counts = [0.0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self.total = 0.0
        self.last_success: float | None = None
        # The metrics server's thread collects while the probe loop records.
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def record(self, result: ProbeResult, now: float | None = None) -> None:
        with self._lock:
            self.runs[result.result] += 1
            if result.round_trip is not None:
                self.counts[bisect.bisect_left(BUCKETS, result.round_trip)] += 1
                self.total += result.round_trip
            if result.result == "ok":
                self.last_success = time.time() if now is None else now

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            runs = CounterMetricFamily(
                RUNS, "Probe runs by result: ok, mismatch or failed.", labels=["dataset", "result"]
            )
            for result in RESULTS:
                runs.add_metric([self.dataset, result], self.runs[result])
            yield runs
            round_trip = HistogramMetricFamily(
                ROUND_TRIP,
                "Seconds from publishing a probe event to reading it back.",
                labels=["dataset"],
            )
            cumulative, buckets = 0.0, []
            for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            round_trip.add_metric([self.dataset], buckets, self.total)
            yield round_trip
            last = GaugeMetricFamily(
                LAST_SUCCESS, "Unix time of the last ok probe run.", labels=["dataset"]
            )
            if self.last_success is not None:
                last.add_metric([self.dataset], self.last_success)
            yield last

    def resume(self, families: Iterable[Metric], job: str) -> None:
        """Continue from the values a Pushgateway holds for this job and dataset."""
        runs: dict[str, float] = {}
        cumulative: dict[float, float] = {}
        total = last_success = None
        for family in families:
            for sample in family.samples:
                labels = sample.labels
                if labels.get("job") != job or labels.get("dataset") != self.dataset:
                    continue
                if sample.name == f"{RUNS}_total" and labels.get("result") in RESULTS:
                    runs[labels["result"]] = sample.value
                elif sample.name == f"{ROUND_TRIP}_bucket":
                    cumulative[float(labels["le"])] = sample.value
                elif sample.name == f"{ROUND_TRIP}_sum":
                    total = sample.value
                elif sample.name == LAST_SUCCESS:
                    last_success = sample.value
        bounds = (*BUCKETS, float("inf"))
        with self._lock:
            for result, value in runs.items():
                self.runs[result] += value
            # Buckets are carried over only when they are the same; otherwise they start again.
            if total is not None and set(cumulative) == set(bounds):
                below = 0.0
                for i, bound in enumerate(bounds):
                    self.counts[i] += cumulative[bound] - below
                    below = cumulative[bound]
                self.total += total
            if last_success is not None and self.last_success is None:
                self.last_success = last_success


class Pushgateway:
    """Pushes one dataset's probe metrics, grouped by job and dataset (so probes of several
    datasets share a job without replacing each other's values)."""

    def __init__(self, url: str, job: str, metrics: ProbeMetrics, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.job = job
        self.metrics = metrics
        self.timeout = timeout

    def resume(self) -> None:
        """Start from the values last pushed; raise OSError or httpx.HTTPError if unreadable."""
        response = httpx.get(f"{self.url}/metrics", timeout=self.timeout)
        response.raise_for_status()
        self.metrics.resume(text_string_to_metric_families(response.text), self.job)

    def push(self) -> None:
        """Replace this group's values; raise OSError (URLError included) when it fails."""
        push_to_gateway(
            self.url,
            job=self.job,
            registry=self.metrics.registry,
            grouping_key={"dataset": self.metrics.dataset},
            timeout=self.timeout,
        )
