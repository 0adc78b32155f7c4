"""The bench's arithmetic and its table: quantiles of samples and of Prometheus histograms,
rows built from measured results, and the rich and Markdown renderings; the readiness checks of
the production pairs and the CPU meter's arithmetic. No server, no clock."""

from __future__ import annotations

import math
import random
import re
import socket
import sys
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from slipstream.bench import cpu, suite
from slipstream.bench.load import IngestResult, ReadResult, ndjson_batches
from slipstream.bench.report import Report, Row, duration, markdown, mebibytes, rate, rich_table
from slipstream.bench.results import (
    Freshness,
    PairResult,
    end_to_end_rate,
    pair_legend,
    pair_rows,
)
from slipstream.bench.scenarios import (
    FULL,
    NATS_POSTGRESQL,
    PAIRS,
    QUICK,
    READS,
    SQS_MOTO_POSTGRESQL,
    Pair,
)
from slipstream.bench.server import BenchServer, server_env
from slipstream.bench.services import Installed, Reachable, resolve, run_name, unready
from slipstream.bench.stats import (
    Buckets,
    bucket_count,
    counter_value,
    histogram_buckets,
    histogram_quantile,
    percentile,
    quantile_bucket,
    subtract_buckets,
    sum_buckets,
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


def _worker_scrape(counts: list[float]) -> str:
    """A worker's /metrics with the flights freshness histogram at these cumulative counts."""
    bounds = ["0.05", "0.1", "0.25", "+Inf"]
    lines = ["# TYPE slipstream_freshness_seconds histogram"]
    lines += [
        f'slipstream_freshness_seconds_bucket{{dataset="flights",le="{b}"}} {c}'
        for b, c in zip(bounds, counts, strict=True)
    ]
    lines.append(f'slipstream_freshness_seconds_count{{dataset="flights"}} {counts[-1]}')
    lines.append('slipstream_freshness_seconds_sum{dataset="flights"} 1.0')
    return "\n".join(lines) + "\n"


def test_sum_buckets_adds_the_workers_histograms_bound_by_bound() -> None:
    one: Buckets = [(0.05, 10.0), (0.1, 30.0), (INF, 40.0)]
    two: Buckets = [(0.05, 0.0), (0.1, 50.0), (INF, 60.0)]
    total = sum_buckets([one, two])
    assert total == [(0.05, 10.0), (0.1, 80.0), (INF, 100.0)]
    # the same quantile as one process observing all 100 would report
    assert histogram_quantile(0.5, total) == pytest.approx(0.05 + 0.05 * 40 / 70)
    assert sum_buckets([one, []]) == one  # a worker that has observed nothing yet
    assert sum_buckets([]) == []


def test_summed_deltas_equal_the_delta_of_the_sums() -> None:
    before = [[(0.1, 5.0), (INF, 5.0)], [(0.1, 1.0), (INF, 2.0)]]
    after = [[(0.1, 9.0), (INF, 12.0)], [(0.1, 4.0), (INF, 8.0)]]
    summed = subtract_buckets(sum_buckets(after), sum_buckets(before))
    assert summed == sum_buckets(
        [subtract_buckets(a, b) for a, b in zip(after, before, strict=True)]
    )
    assert summed == [(0.1, 7.0), (INF, 13.0)]


class _Workers:
    """Stands in for a BenchServer with two workers: one scrape each."""

    def __init__(self, *scrapes: str) -> None:
        self.scrapes = list(scrapes)

    def metrics(self) -> list[str]:
        return self.scrapes


def test_freshness_of_a_deployment_sums_its_workers_scrapes() -> None:
    server = _Workers(_worker_scrape([1, 3, 4, 4]), _worker_scrape([0, 2, 5, 6]), SCRAPE)
    buckets = suite.freshness_buckets(server)  # type: ignore[arg-type]
    # the flights series of all three; the SCRAPE's "trains" series is left out
    assert bucket_count(buckets) == 4 + 6 + 208_000
    assert dict(buckets)[0.1] == 3 + 2 + 1000


def test_bench_server_scrapes_the_server_or_each_worker() -> None:
    embedded, separate = BenchServer({}), BenchServer({}, workers=2)
    try:
        assert embedded.metrics_urls == [f"{embedded.url}/metrics"]
        assert separate.metrics_urls == [
            f"http://127.0.0.1:{port}/metrics" for port in separate.worker_ports
        ]
        assert len(set(separate.worker_ports) | {separate.port}) == 3
        assert separate.env["SLIPSTREAM_HOST"] == "127.0.0.1"  # the workers' /metrics too
    finally:
        embedded.close()
        separate.close()


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


def test_server_env_removes_settings_given_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    env = server_env({"AWS_PROFILE": None, "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert "AWS_PROFILE" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"


# --- production pairs: readiness, names, sizes -----------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_reachable_says_which_service_does_not_answer() -> None:
    port = _closed_port()
    reason = Reachable("NATS", "127.0.0.1", port).missing()
    assert reason is not None
    assert reason.startswith(f"NATS not reachable at 127.0.0.1:{port} (")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert Reachable("NATS", "127.0.0.1", server.getsockname()[1]).missing() is None


def test_installed_names_the_missing_driver_and_what_to_install() -> None:
    assert Installed("json").missing() is None
    reason = Installed("no_such_driver_xyz", "pip install 'slipstream[nats]'").missing()
    assert reason == "no_such_driver_xyz is not installed (pip install 'slipstream[nats]')"
    assert (
        Installed("no_such_package_xyz.sub").missing() == "no_such_package_xyz.sub is not installed"
    )


def test_installed_with_load_reports_a_module_that_does_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_written_broker.py").write_text("raise RuntimeError('not finished')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "half_written_broker", raising=False)
    assert Installed("half_written_broker").missing() is None  # found, not imported
    reason = Installed("half_written_broker", load=True).missing()
    assert reason == "half_written_broker does not import: RuntimeError: not finished"
    assert (
        Installed("absent_broker_xyz", load=True).missing() == "absent_broker_xyz is not installed"
    )


def test_unready_gives_every_reason_in_one_line() -> None:
    port = _closed_port()
    requirements = (
        Installed("json"),
        Installed("no_such_driver_xyz"),
        Reachable("PostgreSQL", "127.0.0.1", port),
    )
    reason = unready(requirements)
    assert reason is not None
    assert reason.startswith("no_such_driver_xyz is not installed; PostgreSQL not reachable at")
    assert unready((Installed("json"),)) is None
    assert unready(()) is None


def test_the_production_pairs_check_what_they_need() -> None:
    nats_needs = {getattr(r, "what", getattr(r, "module", "")) for r in NATS_POSTGRESQL.requires}
    assert {"NATS", "PostgreSQL", "nats", "psycopg"} <= nats_needs
    sqs_needs = {getattr(r, "module", "") for r in SQS_MOTO_POSTGRESQL.requires}
    assert {"boto3", "moto.server", "slipstream.brokers.sqs"} <= sqs_needs
    assert NATS_POSTGRESQL.server_processes == ("nats-server", "postgres")
    assert SQS_MOTO_POSTGRESQL.service is not None  # moto, started by the bench
    assert [p.workers for p in PAIRS] == [0, 2, 2]


def test_run_names_are_unique_and_valid_everywhere_they_go() -> None:
    names = {run_name() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"[a-z_][a-z0-9_]{0,31}", name)  # NATS prefix, PostgreSQL schema
    env = resolve(NATS_POSTGRESQL.env, "bench_1_ab")
    assert env["SLIPSTREAM_BROKER_URL"] == "nats://127.0.0.1:4222?prefix=bench_1_ab"
    assert env["SLIPSTREAM_STORE_URL"].endswith("/test?schema=bench_1_ab")


def test_a_slow_pair_scales_its_workload() -> None:
    assert Pair("x").params(FULL) is FULL
    sized = SQS_MOTO_POSTGRESQL.params(FULL)
    assert (sized.events, sized.batch, sized.paced_rate) == (1000, 100, 100.0)
    assert sized.paced_seconds == FULL.paced_seconds
    quick = SQS_MOTO_POSTGRESQL.params(QUICK)
    assert quick.events == 150
    assert quick.events >= quick.batch


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
        fast=IngestResult(accepted=500_000, complete=True, total_seconds=10.4, post_seconds=10.0),
        fast_freshness=fresh,
        reads=reads,
        peak_rss=[300 * 2**20],
        naive=IngestResult(accepted=3000, complete=True, total_seconds=20.0),
        other_load=[0.05, 0.02],
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
    fast = rows["freshness at 50,000 events/s"]
    assert (fast.p99, fast.floor_met) == ("95 ms", None)  # reported against its target only
    assert "50,000 events/s achieved (target: p99 ≤ 1 s)" in fast.notes
    get = rows["GET by id"]
    assert (get.value, get.p99, get.floor_met) == ("500 req/s", "30 ms", False)
    assert rows["list ?limit=50"].floor_met is None  # no floor on lists
    assert rows["peak RSS"].value == "300 MiB"
    load = rows["other processes' CPU"]
    assert load.value == "0.05 cores"
    assert load.notes.startswith("a quiet machine")
    assert {row.section for row in rows.values()} == {"local/duckdb"}


def test_pair_rows_of_a_failed_pair_say_so_without_raising() -> None:
    rows = {row.figure: row for row in pair_rows(PairResult(Pair("nats/postgresql")), FULL)}
    batched = rows["ingest nats/postgresql (batched)"]
    assert (batched.value, batched.floor_met, batched.notes) == ("—", None, "failed")
    assert rows["ratio batched / naive"].value == "—"
    assert rows["GET by id"].notes == "failed"
    assert rows["peak RSS"].value == "—"


def test_rows_of_a_production_pair_judge_only_its_own_floors() -> None:
    result = _result()
    result.pair = NATS_POSTGRESQL
    result.peak_rss = [120 * 2**20, 90 * 2**20, 90 * 2**20]
    result.other_load = [0.6]
    rows = {row.figure: row for row in pair_rows(result, FULL)}
    batched = rows["ingest nats/postgresql (2 workers) (batched)"]
    assert (batched.floor, batched.floor_met) == ("≥ 20,000 events/s", True)
    assert rows["freshness at 20,000 events/s"].floor == ""
    assert rows["GET by id"].floor == ""  # measured, not held to the embedded pair's floor
    rss = rows["peak RSS"]
    assert rss.value == "300 MiB"
    assert rss.notes.startswith("api 120 MiB + 2 workers 90 MiB each")
    load = rows["other processes' CPU"]
    assert (load.value, load.notes[:11]) == ("0.60 cores", "UNDER LOAD:")


def test_rows_of_a_pair_that_runs_the_ingests_only() -> None:
    result = _result()
    result.pair = SQS_MOTO_POSTGRESQL
    result.reads, result.naive = {}, None
    result.peak_rss = [100 * 2**20, 70 * 2**20, 80 * 2**20]
    rows = {row.figure: row for row in pair_rows(result, FULL)}
    assert "GET by id" not in rows
    assert "ingest naive (batch 1)" not in rows
    assert rows["ingest sqs-moto/postgresql (2 workers) (batched)"].floor == ""  # no floor
    assert "freshness at 100 events/s" in rows  # the pair's own paced rate
    assert not any(figure.startswith("freshness at 250") for figure in rows)  # no second run
    assert rows["peak RSS"].notes.startswith("api 100 MiB + 2 workers 70 MiB–80 MiB")


def test_a_skipped_pair_is_one_row_that_says_why() -> None:
    result = PairResult(NATS_POSTGRESQL, skipped="NATS not reachable at 127.0.0.1:4222")
    rows = pair_rows(result, FULL)
    assert len(rows) == 1
    (row,) = rows
    assert row.figure == "ingest nats/postgresql (2 workers) (batched)"
    assert row.value == "skipped"
    assert row.notes == "skipped: NATS not reachable at 127.0.0.1:4222"
    assert row.cells()[5] == "≥ 20,000 events/s: not measured"
    text = markdown(Report("t", [*pair_rows(_result(), FULL), *rows]))
    assert (
        "| ingest nats/postgresql (2 workers) (batched) | skipped |  |  |  | "
        "≥ 20,000 events/s: not measured | skipped: NATS not reachable at 127.0.0.1:4222 |"
    ) in text
    assert "| **nats/postgresql (2 workers)** |" in text


def test_pair_legend_says_how_the_production_pairs_differ() -> None:
    lines = pair_legend(PAIRS, FULL)
    text = "\n".join(lines)
    assert "local/duckdb" not in text  # nothing to say about the embedded pair
    assert "nats/postgresql (2 workers): 2 `slipstream worker` processes" in text
    assert "freshness summed over the workers' histograms" in text
    assert "1,000 events batched and 100 events/s paced" in text
    assert "moto" in text
    assert "not AWS" in text


# --- the CPU meter ------------------------------------------------------------------------------


def test_system_busy_counts_all_but_idle_and_iowait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "_ticks", lambda: 100.0)
    stat = "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 50 10 15 500 25 2 2 5 0 0\n"
    assert cpu.system_busy(stat) == pytest.approx((100 + 20 + 30 + 5 + 5 + 10) / 100)


def test_process_cpu_reads_utime_and_stime_past_an_awkward_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu, "_ticks", lambda: 100.0)
    fields = ["S", *["0"] * 10, "250", "50", *["0"] * 30]  # state is field 3, utime 14
    stat = "1234 (python (a) b) " + " ".join(fields)
    assert cpu.process_cpu(stat) == pytest.approx(3.0)


def test_other_cores_is_what_neither_the_bench_nor_its_servers_used() -> None:
    before = cpu.CpuSample(wall=10.0, busy=100.0, ours=20.0, services=5.0)
    after = cpu.CpuSample(wall=20.0, busy=118.0, ours=30.0, services=7.0)
    assert cpu.other_cores(before, after) == pytest.approx(0.6)  # (18 - 10 - 2) / 10 s
    quiet = cpu.CpuSample(wall=20.0, busy=109.0, ours=30.0, services=7.0)
    assert cpu.other_cores(before, quiet) == 0.0  # never below zero (sampling jitter)
    assert cpu.other_cores(None, after) is None
    assert cpu.other_cores(after, before) is None


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
