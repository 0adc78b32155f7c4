"""The bench's arithmetic and its table: quantiles of samples and of Prometheus histograms,
rows built from measured results, and the rich and Markdown renderings. No server, no clock."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from rich.console import Console

from slipstream.bench.load import IngestResult, ReadResult, ndjson_batches
from slipstream.bench.report import Report, Row, duration, markdown, mebibytes, rate, rich_table
from slipstream.bench.results import Freshness, PairResult, end_to_end_rate, pair_rows
from slipstream.bench.scenarios import FULL, READS, Pair
from slipstream.bench.server import server_env
from slipstream.bench.stats import (
    Buckets,
    bucket_count,
    counter_value,
    histogram_buckets,
    histogram_quantile,
    percentile,
    quantile_bucket,
    subtract_buckets,
)

INF = math.inf

# A real scrape of `slipstream up` after a flood of 208,000 events (two datasets, to filter).
SCRAPE = """\
# HELP slipstream_freshness_seconds From broker publish to queryable in the store.
# TYPE slipstream_freshness_seconds histogram
slipstream_freshness_seconds_bucket{dataset="flights",le="0.05"} 0.0
slipstream_freshness_seconds_bucket{dataset="flights",le="0.1"} 1000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="0.25"} 8000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="0.5"} 39000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="1.0"} 48000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="2.0"} 66000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="5.0"} 208000.0
slipstream_freshness_seconds_bucket{dataset="flights",le="+Inf"} 208000.0
slipstream_freshness_seconds_count{dataset="flights"} 208000.0
slipstream_freshness_seconds_sum{dataset="flights"} 472897.8
slipstream_freshness_seconds_bucket{dataset="trains",le="0.05"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="0.1"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="0.25"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="0.5"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="1.0"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="2.0"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="5.0"} 7.0
slipstream_freshness_seconds_bucket{dataset="trains",le="+Inf"} 7.0
slipstream_freshness_seconds_count{dataset="trains"} 7.0
slipstream_freshness_seconds_sum{dataset="trains"} 0.1
# HELP slipstream_events_written_total Events newly written to the store.
# TYPE slipstream_events_written_total counter
slipstream_events_written_total{dataset="flights"} 208000.0
slipstream_events_written_total{dataset="trains"} 7.0
"""
FLIGHTS = {"dataset": "flights"}


# --- percentiles of samples -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),  # order does not matter
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([10.0, 20.0], 0.25, 12.5),
        ([7.0], 0.99, 7.0),
        ([float(n) for n in range(1, 101)], 0.99, 99.01),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_q_must_be_a_fraction() -> None:
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 99)


# --- Prometheus histograms --------------------------------------------------------------------


def test_histogram_buckets_reads_one_series_from_prometheus_text() -> None:
    buckets = histogram_buckets(SCRAPE, "slipstream_freshness_seconds", FLIGHTS)
    assert buckets[0] == (0.05, 0.0)
    assert buckets[-1] == (INF, 208000.0)
    assert len(buckets) == 8
    assert [b for b, _ in buckets] == sorted(b for b, _ in buckets)


def test_histogram_buckets_sums_the_series_a_filter_leaves_together() -> None:
    buckets = histogram_buckets(SCRAPE, "slipstream_freshness_seconds")
    assert dict(buckets)[0.05] == 7.0
    assert bucket_count(buckets) == 208007.0
    assert histogram_buckets(SCRAPE, "slipstream_nothing_seconds") == []
    assert histogram_buckets(SCRAPE, "slipstream_freshness_seconds", {"dataset": "x"}) == []


def test_histogram_quantile_matches_prometheus_on_a_real_scrape() -> None:
    buckets = histogram_buckets(SCRAPE, "slipstream_freshness_seconds", FLIGHTS)
    # rank 104,000 falls in (2, 5]: 66,000 below it, 142,000 inside.
    assert histogram_quantile(0.5, buckets) == pytest.approx(2 + 3 * 38_000 / 142_000)
    assert histogram_quantile(0.99, buckets) == pytest.approx(2 + 3 * 139_920 / 142_000)
    # rank 2,080 falls in (0.1, 0.25]: 1,000 below, 7,000 inside.
    assert histogram_quantile(0.01, buckets) == pytest.approx(0.1 + 0.15 * 1_080 / 7_000)


def test_histogram_quantile_in_the_first_bucket_starts_from_zero() -> None:
    assert histogram_quantile(0.5, [(0.05, 100.0), (INF, 100.0)]) == pytest.approx(0.025)


def test_histogram_quantile_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(1.0, 10.0), (2.0, 10.0), (INF, 20.0)]) == 2.0


def test_histogram_quantile_with_a_non_positive_first_bound_answers_that_bound() -> None:
    assert histogram_quantile(0.1, [(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)]) == -1.0


def test_histogram_quantile_of_empty_or_malformed_histograms_is_none() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 3.0), (2.0, 4.0)]) is None  # no +Inf bucket
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, [(1.0, 1.0), (INF, 1.0)])


def test_histogram_quantile_ignores_bucket_order() -> None:
    ordered: Buckets = [(0.1, 2.0), (0.5, 6.0), (INF, 8.0)]
    assert histogram_quantile(0.5, list(reversed(ordered))) == histogram_quantile(0.5, ordered)


def _bucketize(values: list[float], bounds: list[float]) -> Buckets:
    return [(b, float(sum(v <= b for v in values))) for b in [*bounds, INF]]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_histogram_quantile_lands_in_the_bucket_of_the_exact_quantile(seed: int, q: float) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-1.5, 1.0) for _ in range(2000)]
    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]
    buckets = _bucketize(values, bounds)
    estimate = histogram_quantile(q, buckets)
    exact = percentile(values, q)
    bucket = quantile_bucket(q, buckets)
    assert estimate is not None
    assert exact is not None
    assert bucket is not None
    lower, upper = bucket
    assert lower <= estimate <= upper
    assert lower - 1e-9 <= exact <= upper + 1e-9


def test_quantile_bucket_names_the_interpolated_bucket() -> None:
    buckets = histogram_buckets(SCRAPE, "slipstream_freshness_seconds", FLIGHTS)
    assert quantile_bucket(0.99, buckets) == (2.0, 5.0)
    assert quantile_bucket(0.5, [(0.05, 100.0), (INF, 100.0)]) == (0.0, 0.05)
    assert quantile_bucket(0.99, [(1.0, 1.0), (INF, 5.0)]) == (1.0, INF)
    assert quantile_bucket(0.5, []) is None


def test_subtract_buckets_keeps_what_one_interval_observed() -> None:
    before: Buckets = [(0.1, 5.0), (1.0, 10.0), (INF, 10.0)]
    after: Buckets = [(0.1, 5.0), (1.0, 30.0), (INF, 32.0)]
    delta = subtract_buckets(after, before)
    assert delta == [(0.1, 0.0), (1.0, 20.0), (INF, 22.0)]
    assert histogram_quantile(0.5, delta) == pytest.approx(0.1 + 0.9 * 11 / 20)
    assert subtract_buckets(after, []) == after  # a histogram not yet scraped counts as empty


def test_counter_value_sums_matching_series() -> None:
    assert counter_value(SCRAPE, "slipstream_events_written", FLIGHTS) == 208000.0
    assert counter_value(SCRAPE, "slipstream_events_written") == 208007.0
    assert counter_value(SCRAPE, "slipstream_nothing") == 0.0


# --- the load generator's bodies and the server's environment ---------------------------------


def test_ndjson_batches_cut_events_into_bodies_of_at_most_n() -> None:
    events = [{"id": f"e{n}", "n": n} for n in range(5)]
    batches = ndjson_batches(events, 2)
    assert [count for _, count in batches] == [2, 2, 1]
    lines = b"".join(body for body, _ in batches).splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == ["e0", "e1", "e2", "e3", "e4"]
    assert all(body.endswith(b"\n") for body, _ in batches)


def test_server_env_drops_inherited_settings_and_adds_the_scenario(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLIPSTREAM_API_KEYS", "someone-elses-key:read")
    monkeypatch.setenv("SLIPSTREAM_BENCH_REPORT", "/tmp/report.md")
    env = server_env({"SLIPSTREAM_BATCH_SIZE": "1"})
    assert "SLIPSTREAM_API_KEYS" not in env
    assert "SLIPSTREAM_BENCH_REPORT" not in env
    assert env["SLIPSTREAM_BATCH_SIZE"] == "1"
    assert env["SLIPSTREAM_LOG_LEVEL"] == "warning"


# --- rows and rendering -----------------------------------------------------------------------


def _result() -> PairResult:
    fresh = Freshness([(0.05, 900.0), (0.1, 1000.0), (INF, 1000.0)])
    reads = {
        s.figure: ReadResult(requests=1000, errors=0, seconds=2.0, distinct=900, p50=0.01, p99=0.03)
        for s in READS
    }
    return PairResult(
        Pair("local/duckdb"),
        flood=IngestResult(accepted=200_000, complete=True, total_seconds=8.0, post_seconds=4.0),
        flood_freshness=fresh,
        paced=IngestResult(accepted=200_000, complete=True, total_seconds=10.1, post_seconds=10.0),
        paced_freshness=fresh,
        reads=reads,
        peak_rss=300 * 2**20,
        naive=IngestResult(accepted=3000, complete=True, total_seconds=20.0),
    )


def test_end_to_end_rate_only_counts_complete_runs() -> None:
    assert end_to_end_rate(IngestResult(accepted=100, complete=True, total_seconds=2.0)) == 50.0
    assert end_to_end_rate(IngestResult(accepted=100, complete=False, total_seconds=2.0)) is None
    assert end_to_end_rate(IngestResult(accepted=100, complete=True, total_seconds=0.0)) is None
    assert end_to_end_rate(None) is None


def test_pair_rows_say_every_figure_and_judge_the_floors() -> None:
    rows = {row.figure: row for row in pair_rows(_result(), FULL)}
    batched = rows["ingest local/duckdb (batched)"]
    assert batched.value == "25,000 events/s"
    assert batched.floor_met is True
    assert rows["ingest naive (batch 1)"].value == "150 events/s"
    assert rows["ratio batched / naive"].value == "167×"
    paced = rows["freshness at 20,000 events/s"]
    assert (paced.p50, paced.p99, paced.floor_met) == ("27.8 ms", "95 ms", True)
    assert "bucket-interpolated" in paced.notes
    assert "p99 in 50 ms–100 ms" in paced.notes
    get = rows["GET by id"]
    assert (get.value, get.p99, get.floor_met) == ("500 req/s", "30 ms", False)
    assert rows["list ?limit=50"].floor_met is None  # no floor on lists
    assert rows["peak RSS"].value == "300 MiB"
    assert {row.section for row in rows.values()} == {"local/duckdb"}


def test_pair_rows_of_a_failed_pair_say_so_without_raising() -> None:
    rows = {row.figure: row for row in pair_rows(PairResult(Pair("nats/postgresql")), FULL)}
    batched = rows["ingest nats/postgresql (batched)"]
    assert (batched.value, batched.floor_met, batched.notes) == ("—", None, "failed")
    assert rows["ratio batched / naive"].value == "—"
    assert rows["GET by id"].notes == "failed"
    assert rows["peak RSS"].value == "—"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12.3 ms"), (0.25, "250 ms"), (1.5, "1.50 s"), (None, "—"), (math.nan, "—")],
)
def test_duration_picks_a_readable_unit(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_rate_and_size_formatting() -> None:
    assert rate(12345.6, "events/s") == "12,346 events/s"
    assert rate(None, "req/s") == "—"
    assert mebibytes(512 * 2**20) == "512 MiB"
    assert mebibytes(None) == "—"


def _report() -> Report:
    return Report(
        "slipstream bench (test)",
        [
            Row("ingest a|b", "1 events/s", floor="≥ 2 events/s", floor_met=False, section="a"),
            Row("GET by id", "3 req/s", "1 ms", "2 ms", "0", "p99 ≤ 20 ms", True, section="a"),
            Row("ingest c", "—", floor="≥ 2 events/s", section="c"),
        ],
        machine=[("cores", "2"), ("Python", "3.11")],
        parameters=[("mode", "quick")],
        legend=["freshness: bucket-interpolated"],
        failures=["c (batched): the server exited with code 1"],
    )


def test_markdown_has_the_table_the_context_and_the_failures() -> None:
    text = markdown(_report())
    lines = text.splitlines()
    assert lines[0] == "**slipstream bench (test)**"
    assert "Machine: cores 2; Python 3.11." in lines
    assert "Parameters: mode quick." in lines
    header = lines.index("| Figure | Value | p50 | p99 | Errors | Floor | How it is measured |")
    assert lines[header + 1] == "|---|---:|---:|---:|---:|---|---|"
    assert "| **a** | | | | | | |" in lines  # two pairs: each gets a heading row
    assert "| ingest a\\|b | 1 events/s |  |  |  | **≥ 2 events/s: MISSED** |  |" in lines
    assert "| GET by id | 3 req/s | 1 ms | 2 ms | 0 | p99 ≤ 20 ms: met |  |" in lines
    assert "≥ 2 events/s: not measured" in text
    assert "- freshness: bucket-interpolated" in lines
    assert lines[-1] == "**FAILED:** c (batched): the server exited with code 1"


def test_markdown_of_one_pair_has_no_heading_rows() -> None:
    report = Report("t", [Row("x", section="only"), Row("y", section="only")])
    assert "**only**" not in markdown(report)


def test_rich_table_shows_the_same_figures() -> None:
    console = Console(record=True, width=200)
    console.print(rich_table(_report()))
    text = console.export_text()
    assert "slipstream bench (test)" in text
    assert "≥ 2 events/s: MISSED" in text
    assert "p99 ≤ 20 ms: met" in text
    assert "machine: cores 2; Python 3.11" in text
    assert "FAILED: c (batched)" in text
