"""`slipstream bench --scale`: what each figure costs as the store fills.

One deployment per pair that serves reads (embedded, and NATS + PostgreSQL), filled in steps
(200k → 1M → 2M stored events by default). After each step, with nothing else running: the
step's ingest rate, each read with one client and with 50 connections (p50, p99, requests/s),
the row-count call (`GET /v1/datasets`), the server's resident memory and the store's bytes on
disk per stored event. A table per pair, and one plot of the p50s against the stored events.

The steps are parts of one simulated history that ends when the bench starts, sent in time
order, so the store fills as a year of live traffic would: the newest events are always the
latest part's, and the last hour before the newest event holds about as many events at every
step. What a read of recent data costs should not grow with the history behind it; this shows
whether it does.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console

from slipstream.bench.load import IngestJob, IngestResult, ReadJob, ReadResult
from slipstream.bench.report import Report, Row, duration, mebibytes, rate
from slipstream.bench.results import PairResult
from slipstream.bench.scenarios import DATASET, LOCAL, NATS_POSTGRESQL, Pair
from slipstream.bench.server import BenchServer, rss_bytes
from slipstream.bench.services import Started, unready
from slipstream.bench.suite import (
    deployment,
    ingest_timeout,
    load_generator_installed,
    machine,
    narrator,
    run_load,
    show,
)

EVENTS = f"/v1/datasets/{DATASET}/events"


@dataclass(frozen=True)
class ScaleRead:
    figure: str
    path: Callable[[datetime], str]  # given the newest event time stored


def _last_hour(newest: datetime) -> str:
    since = (newest - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"/v1/datasets/{DATASET}/stats?bucket=hour&since={since}"


SCALE_READS = (
    ScaleRead("list 50", lambda _: f"{EVENTS}?limit=50"),
    ScaleRead("list 50 status=landed", lambda _: f"{EVENTS}?limit=50&status=landed"),
    ScaleRead("stats by hour, last hour", _last_hour),
    ScaleRead("GET by id", lambda _: f"{EVENTS}/{{id}}"),
    ScaleRead("row counts (GET /v1/datasets)", lambda _: "/v1/datasets"),
)
SEED = 100
SCALE_PAIRS = (LOCAL, NATS_POSTGRESQL)


@dataclass(frozen=True)
class ScaleParams:
    steps: tuple[int, ...]  # stored events after each step
    read_seconds: float  # per read and number of connections
    connections: tuple[int, ...] = (1, 50)
    batch: int = 1000
    ingest_connections: int = 4
    drain_timeout: float = 600.0


SCALE_FULL = ScaleParams((200_000, 1_000_000, 2_000_000), read_seconds=4.0)
SCALE_QUICK = ScaleParams((20_000, 60_000), read_seconds=1.0)


@dataclass
class Step:
    events: int  # stored after the step
    ingest: IngestResult
    reads: dict[tuple[str, int], ReadResult] = field(default_factory=dict)
    rss: int | None = None  # bytes, the deployment's processes together
    analyzed: bool = False  # the bench ran VACUUM (ANALYZE), the server's autovacuum being off
    disk: int | None = None  # bytes the store (and the embedded broker) hold


@dataclass
class ScaleResult:
    pair: Pair
    steps: list[Step] = field(default_factory=list)
    skipped: str | None = None
    failures: list[str] = field(default_factory=list)


def fill_and_measure(
    pair: Pair, params: ScaleParams, scratch: Path, say: Callable[[str], None]
) -> ScaleResult:
    """The pair's steps, or why it cannot run here; a failure ends the pair, not the bench."""
    result = ScaleResult(pair)
    if (reason := unready(pair.requires)) is not None:
        result.skipped = reason
        say(f"{pair.name}: skipped: {reason}")
        return result
    try:
        with _deployment(pair) as (server, store):
            ids: list[str] = []
            end = datetime.now(UTC)
            stored = 0
            for target in params.steps:
                say(f"{pair.name}: filling to {target:,} events")
                step = _fill(server, params, (stored, target), end, scratch, ids)
                step.analyzed = store.settle()
                stored = target
                ids_path = scratch / "scale-ids.txt"  # every id stored so far, for GET by id
                ids_path.write_text("\n".join(ids) + "\n")
                newest = _newest_event_time(server)
                for read in SCALE_READS:
                    for connections in params.connections:
                        step.reads[read.figure, connections] = _read(
                            server, read.path(newest), connections, params, ids_path
                        )
                step.rss = sum(rss_bytes(child.process.pid) or 0 for child in server.children)
                step.disk = store.size()
                result.steps.append(step)
                if not step.ingest.complete:
                    result.failures.append(f"{pair.name}: {step.ingest.error or 'incomplete'}")
                    break
    except Exception as exc:  # the figures so far stand; say what ended the pair
        result.failures.append(f"{pair.name}: {type(exc).__name__}: {exc}")
    return result


@dataclass(frozen=True)
class StoreOnDisk:
    """What the bench asks of the deployment's store besides HTTP."""

    size: Callable[[], int | None]  # bytes on disk
    settle: Callable[[], bool]  # after a step: True when it refreshed planner statistics


@contextlib.contextmanager
def _deployment(pair: Pair) -> Iterator[tuple[BenchServer, StoreOnDisk]]:
    """The pair's server, and its store's size and settling."""
    holder = PairResult(pair)
    with deployment(pair, Started(), holder) as server:
        schema = _schema_of(server)
        if schema is None:
            yield server, StoreOnDisk(lambda: _directory_size(server.workdir), lambda: False)
        else:
            size = functools.partial(_schema_size, server, schema)
            yield server, StoreOnDisk(size, functools.partial(_analyze, server, schema))


def _fill(
    server: BenchServer,
    params: ScaleParams,
    part: tuple[int, int],
    end: datetime,
    scratch: Path,
    ids: list[str],
) -> Step:
    """Events `part[0]` to `part[1]` of the history ending at `end`, and the ids they had."""
    ids_path = scratch / f"scale-ids-{part[0]}.txt"
    job = IngestJob(
        server.url,
        part[1] - part[0],
        params.batch,
        params.ingest_connections,
        params.drain_timeout,
        seed=SEED,
        ids_path=str(ids_path),
        history_end=end.isoformat(),
        history=params.steps[-1],
        skip=part[0],
    )
    outcome = run_load("ingest", job, IngestResult, ingest_timeout(job, 2_000.0))
    server.check_alive()
    ids.extend(ids_path.read_text().split())
    return Step(outcome.baseline_rows + outcome.accepted, outcome)


def _newest_event_time(server: BenchServer) -> datetime:
    answer = httpx.get(f"{server.url}/v1/datasets", timeout=30.0)
    answer.raise_for_status()
    dataset = next(d for d in answer.json()["datasets"] if d["name"] == DATASET)
    return datetime.fromisoformat(dataset["newest_event_time"].replace("Z", "+00:00"))


def _read(
    server: BenchServer, path: str, connections: int, params: ScaleParams, ids_path: Path
) -> ReadResult:
    job = ReadJob(
        server.url,
        [path],
        params.read_seconds,
        connections,
        warmup=min(1.0, params.read_seconds),
        ids_path=str(ids_path),
        seed=7,
    )
    reads = run_load("reads", job, ReadResult, params.read_seconds + 120.0)
    server.check_alive()
    return reads


def _schema_of(server: BenchServer) -> str | None:
    url = server.env.get("SLIPSTREAM_STORE_URL", "")
    if not url.startswith("postgresql://"):
        return None
    return url.rsplit("schema=", 1)[-1]


def _directory_size(path: Path) -> int:
    """The embedded broker's and store's files (the server's logs left out)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix != ".log")


def _analyze(server: BenchServer, schema: str) -> bool:
    """VACUUM (ANALYZE) the schema's tables when the server's autovacuum is off, as it would
    have: a PostgreSQL in production runs it, and without statistics the planner reads a
    recent-time range as a third of the table and scans all of it. True when it ran."""
    import psycopg
    from psycopg import sql

    url = server.env["SLIPSTREAM_STORE_URL"].split("?", 1)[0]
    with psycopg.connect(url, autocommit=True) as conn:
        setting = conn.execute("SHOW autovacuum").fetchone()
        if setting is not None and setting[0] == "on":
            return False
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, table)))
    return True


def _schema_size(server: BenchServer, schema: str) -> int | None:
    """Tables, indexes and TOAST of the deployment's PostgreSQL schema."""
    import psycopg

    url = server.env["SLIPSTREAM_STORE_URL"].split("?", 1)[0]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            (schema,),
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


# --- the table and the plot ---------------------------------------------------------------


def scale_rows(result: ScaleResult, params: ScaleParams) -> list[Row]:
    section = result.pair.name
    if result.skipped:
        return [Row(section, notes=f"skipped: {result.skipped}", section=section)]
    rows = []
    for step in result.steps:
        label = f"{step.events:,} events"
        per_event = step.disk / step.events if step.disk and step.events else None
        rows.append(
            Row(
                f"{section}, {label}: ingest of the step",
                rate(step.ingest.accepted / step.ingest.total_seconds, "events/s")
                if step.ingest.total_seconds
                else "—",
                notes=f"RSS {mebibytes(step.rss)}; disk "
                + (f"{per_event:,.0f} bytes/event" if per_event else "—")
                + ("; VACUUM (ANALYZE) run: autovacuum is off" if step.analyzed else ""),
                section=section,
            )
        )
        for (figure, connections), reads in step.reads.items():
            rows.append(
                Row(
                    f"{label}: {figure}, {connections} conn.",
                    rate(reads.per_second, "req/s"),
                    duration(reads.p50),
                    duration(reads.p99),
                    str(reads.errors) if reads.errors else "",
                    section=section,
                )
            )
    return rows


def scale_report(results: list[ScaleResult], params: ScaleParams, seconds: float) -> Report:
    return Report(
        f"slipstream bench --scale ({seconds:.0f} s)",
        [row for result in results for row in scale_rows(result, params)],
        parameters=[
            ("steps", " → ".join(f"{s:,}" for s in params.steps) + " stored events"),
            (
                "ingest",
                f"{params.batch:,}/request, {params.ingest_connections} connections",
            ),
            (
                "reads",
                f"{' and '.join(map(str, params.connections))} connections, "
                f"{params.read_seconds:g} s each",
            ),
        ],
        legend=[
            "ingest of the step: first post → every event of the step queryable.",
            "RSS: the deployment's own processes (not NATS or PostgreSQL); disk: the embedded "
            "broker's and store's files, or the PostgreSQL schema's tables and indexes, per "
            "stored event.",
            "PostgreSQL: where the server runs without autovacuum, the bench runs VACUUM "
            "(ANALYZE) after each step, as autovacuum would have; without statistics the planner "
            "scans the whole table for a recent time range.",
        ],
        failures=[f for result in results for f in result.failures],
    )


def plot(results: list[ScaleResult], path: Path) -> None:
    """p50 of each read (one client) against the stored events, one panel per pair."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: write the file only
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.steps]
    if not shown:
        return
    figure, axes = plt.subplots(1, len(shown), figsize=(6.5 * len(shown), 4.5), squeeze=False)
    for axis, result in zip(axes[0], shown, strict=True):
        events = [step.events for step in result.steps]
        for read in SCALE_READS:
            p50 = [step.reads.get((read.figure, 1)) for step in result.steps]
            axis.plot(
                events,
                [r.p50 * 1000 if r and r.p50 is not None else float("nan") for r in p50],
                marker="o",
                label=read.figure,
            )
        axis.set_title(result.pair.name)
        axis.set_xlabel("stored events")
        axis.set_ylabel("p50, one client (ms)")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_scale_bench(
    quick: bool = False, report: Path | None = None, plot_path: Path | None = None
) -> int:
    """Fill each pair's store in steps and print the table (and write the plot); 0 when every
    step completed, 1 when one failed."""
    console = Console(stderr=True)
    if not load_generator_installed(console):
        return 2
    params = SCALE_QUICK if quick else SCALE_FULL
    started = time.monotonic()
    say = narrator(console, started)
    with tempfile.TemporaryDirectory(prefix="slipstream-scale-") as scratch:
        results = [fill_and_measure(pair, params, Path(scratch), say) for pair in SCALE_PAIRS]
    table = scale_report(results, params, time.monotonic() - started)
    table = replace(table, machine=machine())
    show(table, report, console)
    if plot_path is not None:
        plot(results, plot_path)
        console.print(f"wrote {plot_path}", highlight=False)
    return 1 if table.failures else 0
