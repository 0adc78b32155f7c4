"""The status page's ring of snapshots, and the rates and quantiles computed from its deltas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from slipstream.metrics import FRESHNESS_BUCKETS, Metrics
from slipstream.status_history import (
    AVAILABILITY_OBJECTIVE,
    AVAILABILITY_ROUTES,
    Snapshot,
    StatusHistory,
    histogram_quantile,
    point,
    snapshot,
)
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
INF = float("inf")


def snap(clock: float, **values: object) -> Snapshot:
    fields: dict[str, object] = {
        "at": 1_800_000_000 + clock,
        "clock": clock,
        "ingested": 0.0,
        "written": 0.0,
        "requests": 0.0,
        "server_errors": 0.0,
        "freshness_buckets": ((1.0, 0.0), (INF, 0.0)),
        "backlog": 0.0,
        **values,
    }
    return Snapshot(**fields)  # type: ignore[arg-type]


def test_an_hour_at_five_seconds_is_720_points() -> None:
    assert StatusHistory(Metrics()).capacity == 720


def test_the_ring_keeps_the_newest_snapshots_in_order_after_wrapping() -> None:
    history = StatusHistory(Metrics(), capacity=4)
    for clock in range(10):
        history.append(snap(float(clock)))
    assert len(history) == 4
    assert [s.clock for s in history.snapshots()] == [6.0, 7.0, 8.0, 9.0]
    assert [p.at - 1_800_000_000 for p in history.points()] == [7.0, 8.0, 9.0]


def test_an_empty_or_single_snapshot_ring_has_no_points() -> None:
    history = StatusHistory(Metrics())
    assert history.points() == []
    history.sample()
    assert len(history) == 1
    assert history.points() == []


def test_rates_are_counter_deltas_over_the_monotonic_interval() -> None:
    figures = point(
        snap(10.0, ingested=100.0, written=90.0, backlog=7.0),
        snap(15.0, ingested=600.0, written=340.0, backlog=3.0),
        snap(0.0),
    )
    assert figures.ingested_per_s == pytest.approx(100.0)
    assert figures.written_per_s == pytest.approx(50.0)
    assert figures.backlog == 3.0  # a gauge: its current value, not a delta


def test_error_rate_is_the_5xx_share_of_the_interval_and_none_without_requests() -> None:
    figures = point(
        snap(5.0, requests=1000.0, server_errors=10.0),
        snap(10.0, requests=1200.0, server_errors=15.0),
        snap(0.0),
    )
    assert figures.error_rate == pytest.approx(5 / 200)
    idle = point(snap(5.0, requests=9.0), snap(10.0, requests=9.0), snap(0.0, requests=9.0))
    assert idle.error_rate is None
    assert idle.budget_spent is None


def test_budget_spent_counts_from_the_window_start_against_the_objective() -> None:
    start = snap(0.0, requests=500.0, server_errors=1.0)
    figures = point(
        snap(5.0, requests=10_000.0, server_errors=2.0),
        snap(10.0, requests=20_500.0, server_errors=11.0),
        start,
    )
    # 10 bad of 20 000 requests; 99.9 % allows 20 of them: half the budget is spent.
    assert figures.budget_spent == pytest.approx(0.5)


def test_quantiles_interpolate_inside_the_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (0.5, 60.0), (1.0, 100.0), (INF, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 40 / 50)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 39 / 40)
    assert histogram_quantile(0.05, buckets) == pytest.approx(0.05)


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(1.0, 1.0), (10.0, 2.0), (INF, 100.0)]) == 10.0


def test_no_observations_means_no_quantile() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None


def test_freshness_quantiles_come_from_the_interval_not_from_all_time() -> None:
    slow = ((1.0, 0.0), (60.0, 100.0), (INF, 100.0))  # earlier: everything slow
    then_fast = ((1.0, 100.0), (60.0, 200.0), (INF, 200.0))  # this interval: everything fast
    figures = point(
        snap(5.0, freshness_buckets=slow), snap(10.0, freshness_buckets=then_fast), snap(0)
    )
    assert figures.freshness_p50 == pytest.approx(0.5)
    assert figures.freshness_p99 == pytest.approx(0.99)
    quiet = point(snap(5.0, freshness_buckets=slow), snap(10.0, freshness_buckets=slow), snap(0))
    assert quiet.freshness_p50 is None


def test_a_snapshot_reads_the_real_collectors_summed_over_datasets() -> None:
    metrics = Metrics()
    for name in ("flights", "trains"):
        metrics.start_dataset(name)
    metrics.events_ingested.labels("flights").inc(5)
    metrics.events_ingested.labels("trains").inc(2)
    metrics.events_written.labels("flights").inc(4)
    metrics.backlog.labels("flights").set(3)
    metrics.backlog.labels("trains").set(4)
    metrics.freshness.labels("flights").observe(0.07)
    metrics.freshness.labels("trains").observe(20.0)
    requests = metrics.http_requests
    requests.labels("/v1/datasets/{ds}/events", "POST", "202", "flights").inc(8)
    requests.labels("/v1/datasets/{ds}/events", "POST", "503", "flights").inc(2)
    requests.labels("/push/sns/{ds}", "POST", "500", "flights").inc(1)
    requests.labels("/metrics", "GET", "500", "").inc(50)  # outside the SLO's routes

    taken = snapshot(metrics)
    assert (taken.ingested, taken.written, taken.backlog) == (7.0, 4.0, 7.0)
    assert (taken.requests, taken.server_errors) == (11.0, 3.0)
    counts = dict(taken.freshness_buckets)
    assert [bound for bound, _ in taken.freshness_buckets] == [*FRESHNESS_BUCKETS, INF]
    assert (counts[0.05], counts[0.1], counts[30.0], counts[INF]) == (0.0, 1.0, 2.0, 2.0)


def test_the_objective_and_routes_match_the_slo_spec() -> None:
    spec = yaml.safe_load((ROOT / "observability" / "slo" / "slos.yaml").read_text())
    slo = next(s for s in spec["slos"] if s["name"] == "api-availability")
    assert slo["objective"] / 100 == pytest.approx(AVAILABILITY_OBJECTIVE)
    assert slo["sli"]["selector"]["route"] == AVAILABILITY_ROUTES.pattern
    assert slo["sli"]["bad"] == {"code": "5.."}


async def test_run_samples_every_step_until_cancelled() -> None:
    history = StatusHistory(Metrics(), step=0.01)
    task = asyncio.create_task(history.run())
    try:
        await eventually(lambda: _at_least(history, 3), timeout=10, what="three samples")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _at_least(history: StatusHistory, count: int) -> bool:
    return len(history) >= count
