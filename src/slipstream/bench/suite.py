"""Running the scenarios. For each broker/store pair that can run here, a fresh deployment
(`slipstream up`, or `slipstream api` and N workers) takes a flood of batched events, then a load
paced at the ingest floor, then the read workloads; a second fresh one, with worker batch size 1,
takes one event per request (the naive baseline). A pair may run the two ingests only. The load
always comes from another process (`slipstream.bench.load`), and every wait has a deadline."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
from rich.console import Console

from slipstream.bench import cpu
from slipstream.bench.cpu import UNDER_LOAD
from slipstream.bench.load import IngestJob, IngestResult, ReadJob, ReadResult
from slipstream.bench.report import Report, markdown, rich_table
from slipstream.bench.results import Freshness, PairResult, pair_legend, pair_rows
from slipstream.bench.scenarios import DATASET, FULL, PAIRS, QUICK, READS, Pair, Params
from slipstream.bench.server import BenchServer, ServerFailed
from slipstream.bench.services import ServiceFailed, Started, resolve, run_name, unready
from slipstream.bench.stats import (
    Buckets,
    bucket_count,
    histogram_buckets,
    subtract_buckets,
    sum_buckets,
)

R = TypeVar("R", IngestResult, ReadResult)
FRESHNESS = "slipstream_freshness_seconds"
WIDE = 180
METRICS_TIMEOUT = 10.0  # for a batch's freshness observations, made just after its commit
LEGEND = [
    "ingest: events/s from the first POST to the moment /v1/datasets counts them all.",
    "freshness: broker publish → committed in the store, from the server's "
    "slipstream_freshness_seconds histogram (with separate workers, the sum of theirs), "
    "bucket-interpolated as Prometheus' histogram_quantile does (the bucket holding each "
    "quantile is named).",
    "reads: latency seen by the client process, which shares the machine's cores with the server.",
    f"other processes' CPU: at {UNDER_LOAD:g} cores or more, the pair ran UNDER LOAD "
    "(another workload took CPU from it) and its figures are low.",
]


class LoadFailed(Exception):
    """The load generator process failed or overran its deadline."""


def run_load(kind: str, job: IngestJob | ReadJob, result_type: type[R], timeout: float) -> R:
    """Run one job in a `python -m slipstream.bench.load` process; kill it past `timeout`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "slipstream.bench.load"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(
            orjson.dumps({"job": kind, "parameters": asdict(job)}), timeout
        )
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise LoadFailed(f"the {kind} load did not finish within {timeout:.0f} s") from None
    finally:
        if process.poll() is None:  # interrupted: never leave the load running
            process.kill()
            process.wait()
    if process.returncode != 0 or not out.strip():
        tail = " / ".join(err.decode(errors="replace").strip().splitlines()[-3:])
        raise LoadFailed(f"the {kind} load exited with {process.returncode}: {tail}")
    answer = orjson.loads(out.strip().splitlines()[-1])
    known = {f.name for f in fields(result_type)}
    return result_type(**{k: v for k, v in answer.items() if k in known})


def ingest_timeout(job: IngestJob, slowest: float) -> float:
    """Simulating the events, posting them at no less than `slowest` events/s, the drain, slack."""
    sending = job.events / job.rate if job.rate else job.events / slowest
    return 30.0 + job.events / 20_000 + sending + job.drain_timeout


def freshness_buckets(server: BenchServer) -> Buckets:
    """The freshness histogram of the deployment: the server's, or the sum of the workers'."""
    labels = {"dataset": DATASET}
    return sum_buckets([histogram_buckets(text, FRESHNESS, labels) for text in server.metrics()])


def freshness_since(server: BenchServer, before: Buckets, expected: int) -> Freshness:
    """The histogram's growth since `before`: the freshness of the events written meanwhile."""
    deadline = time.monotonic() + METRICS_TIMEOUT
    while True:
        delta = subtract_buckets(freshness_buckets(server), before)
        if bucket_count(delta) >= expected or time.monotonic() > deadline:
            return Freshness(delta)
        time.sleep(0.05)


def ingest(
    server: BenchServer, job: IngestJob, slowest: float, result: PairResult, what: str
) -> tuple[IngestResult, Freshness]:
    before = freshness_buckets(server)
    outcome = run_load("ingest", job, IngestResult, ingest_timeout(job, slowest))
    server.check_alive()
    if not outcome.complete:
        result.failures.append(f"{result.pair.name} {what}: {outcome.error or 'incomplete'}")
    elif outcome.rejected or outcome.failed:
        result.failures.append(
            f"{result.pair.name} {what}: {outcome.rejected} rejected, {outcome.failed} failed"
        )
    return outcome, freshness_since(server, before, outcome.accepted)


@contextlib.contextmanager
def deployment(
    pair: Pair, started: Started, result: PairResult, extra: Mapping[str, str] | None = None
) -> Iterator[BenchServer]:
    """A ready deployment of the pair under names of its own (NATS prefix, PostgreSQL schema),
    removed once it has stopped; the CPU others used meanwhile goes to `result.other_load`."""
    env = resolve(pair.env, run_name())
    try:
        with BenchServer({**started.env, **env, **(extra or {})}, workers=pair.workers) as server:
            pids = [*started.pids, *(child.process.pid for child in server.children)]
            before = cpu.sample(pair.server_processes, pids)
            yield server
            other = cpu.other_cores(before, cpu.sample(pair.server_processes, pids))
            if other is not None:
                result.other_load.append(other)
    finally:
        for cleanup in pair.cleanup:
            try:
                cleanup(env)
            except Exception as exc:  # the figures stand; what is left behind is said
                result.failures.append(f"{pair.name} cleanup ({cleanup.__name__}): {exc}")


def batched_scenarios(
    pair: Pair,
    params: Params,
    started: Started,
    ids_path: str,
    result: PairResult,
    say: Callable[[str], None],
) -> None:
    slowest = 5_000 * pair.scale
    with deployment(pair, started, result) as server:
        say(f"{pair.name}: batched ingest of {params.events:,} events")
        flood = IngestJob(
            server.url,
            params.events,
            params.batch,
            params.connections,
            params.drain_timeout,
            seed=1,
            ids_path=ids_path,
        )
        result.flood, result.flood_freshness = ingest(server, flood, slowest, result, "batched")
        say(f"{pair.name}: {params.paced_rate:,.0f} events/s for {params.paced_seconds:g} s")
        paced = IngestJob(
            server.url,
            round(params.paced_rate * params.paced_seconds),
            params.batch,
            params.connections,
            params.drain_timeout,
            rate=params.paced_rate,
            seed=2,
        )
        result.paced, result.paced_freshness = ingest(server, paced, slowest, result, "paced")
        if pair.reads:  # a pair that runs the two ingests only skips this one too
            say(f"{pair.name}: {params.fast_rate:,.0f} events/s for {params.paced_seconds:g} s")
            fast = replace(
                paced,
                events=round(params.fast_rate * params.paced_seconds),
                rate=params.fast_rate,
                seed=4,  # events of its own: the seeds before would be duplicates
            )
            result.fast, result.fast_freshness = ingest(server, fast, slowest, result, "fast")
        if pair.reads:
            read_scenarios(server, params, ids_path, result, say)
        result.peak_rss = server.peak_rss()


def read_scenarios(
    server: BenchServer,
    params: Params,
    ids_path: str,
    result: PairResult,
    say: Callable[[str], None],
) -> None:
    name = result.pair.name
    for scenario in READS:
        say(f"{name}: {scenario.figure}, {params.read_connections} connections")
        job = ReadJob(
            server.url,
            [scenario.path],
            params.read_seconds,
            params.read_connections,
            warmup=params.read_warmup,
            ids_path=ids_path,
            id_pool=scenario.hot_ids,
        )
        timeout = params.read_warmup + params.read_seconds + 60.0
        reads = run_load("reads", job, ReadResult, timeout)
        server.check_alive()
        result.reads[scenario.figure] = reads
        if reads.errors:
            result.failures.append(
                f"{name} {scenario.figure}: {reads.errors} errors ({reads.first_error})"
            )


def naive_scenario(
    pair: Pair, params: Params, started: Started, result: PairResult, say: Callable[[str], None]
) -> None:
    with deployment(pair, started, result, {"SLIPSTREAM_BATCH_SIZE": "1"}) as server:
        say(f"{pair.name}: naive ingest of {params.naive_events:,} events, one per request")
        naive = IngestJob(
            server.url, params.naive_events, 1, params.connections, params.drain_timeout, seed=3
        )
        result.naive, _ = ingest(server, naive, 50 * pair.scale, result, "naive")


def run_pair(pair: Pair, params: Params, scratch: Path, say: Callable[[str], None]) -> PairResult:
    """The pair's scenarios, or the reason it cannot run here (skipped, not failed). Whatever
    goes wrong is recorded as a failure of this pair; the next pair still runs."""
    result = PairResult(pair)
    if (reason := unready(pair.requires)) is not None:
        result.skipped = reason
        say(f"{pair.name}: skipped: {reason}")
        return result
    params = pair.params(params)
    ids_path = str(scratch / f"ids-{run_name()}.txt")
    try:
        with pair.service() if pair.service else contextlib.nullcontext(Started()) as started:
            runs: list[tuple[str, Callable[[], None]]] = [
                ("batched", lambda: batched_scenarios(pair, params, started, ids_path, result, say))
            ]
            if pair.reads:
                runs.append(("naive", lambda: naive_scenario(pair, params, started, result, say)))
            for what, run in runs:
                try:
                    run()
                except (ServerFailed, LoadFailed, httpx.HTTPError, OSError, ValueError) as exc:
                    result.failures.append(f"{pair.name} ({what}): {exc}")
                except Exception as exc:  # a pair's bug must not end the bench: say it, go on
                    result.failures.append(f"{pair.name} ({what}): {type(exc).__name__}: {exc}")
    except ServiceFailed as exc:
        result.failures.append(f"{pair.name}: {exc}")
    return result


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> list[tuple[str, str]]:
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(
            (n.split(":", 1)[1].strip() for n in lines if n.startswith("model name")), model
        )
    except OSError:
        pass
    return [
        ("cores", f"{os.cpu_count()} ({model})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("slipstream", _version("slipstream")),
        ("DuckDB", _version("duckdb")),
        ("SQLite", sqlite3.sqlite_version),
    ]


def parameters(params: Params, quick: bool) -> list[tuple[str, str]]:
    return [
        ("mode", "quick" if quick else "full"),
        (
            "batched",
            f"{params.events:,} events, {params.batch:,}/request, {params.connections} connections",
        ),
        (
            "paced",
            f"{params.paced_rate:,.0f} and {params.fast_rate:,.0f} events/s for "
            f"{params.paced_seconds:g} s each",
        ),
        ("naive", f"{params.naive_events:,} events, 1/request, batch size 1"),
        (
            "reads",
            f"{params.read_connections} connections, {params.read_seconds:g} s each after {params.read_warmup:g} s warm-up",
        ),
    ]


def run_bench(quick: bool = False, report: Path | None = None) -> int:
    """Run every pair's scenarios and print the table (also written as Markdown to `report`,
    SLIPSTREAM_BENCH_REPORT). 0 when every scenario completed, 1 when one failed."""
    console = Console(stderr=True)
    if not load_generator_installed(console):
        return 2
    params = QUICK if quick else FULL
    started = time.monotonic()
    say = narrator(console, started)
    with tempfile.TemporaryDirectory(prefix="slipstream-bench-") as scratch:
        results = [run_pair(pair, params, Path(scratch), say) for pair in PAIRS]
    table = Report(
        f"slipstream bench ({'quick' if quick else 'full'}, {time.monotonic() - started:.0f} s)",
        [row for result in results for row in pair_rows(result, params)],
        machine(),
        parameters(params, quick),
        [*LEGEND, *pair_legend(PAIRS, params)],
        [failure for result in results for failure in result.failures],
    )
    show(table, report, console)
    return 1 if table.failures else 0


def load_generator_installed(console: Console) -> bool:
    if importlib.util.find_spec("aiohttp") is None:
        console.print("[bold red]error:[/] the bench needs aiohttp: pip install aiohttp")
        return False
    return True


def narrator(console: Console, started: float) -> Callable[[str], None]:
    """Progress lines on stderr, each with the seconds since the bench began."""

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f} s[/] {message}", highlight=False)

    return say


def show(table: Report, report: Path | None, console: Console) -> None:
    """The table on stdout, and as Markdown in `report` when one is set."""
    out = Console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=WIDE)  # a log or a pipe: no reason to squeeze the table into 80
    out.print(rich_table(table))
    if report is not None:
        report.write_text(markdown(table))
        console.print(f"wrote {report}", highlight=False)
