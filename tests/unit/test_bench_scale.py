"""`bench --scale` without a server: the rows and the plot made of measured steps, the paths it
reads, what it counts as the store's disk, and how it refuses what it cannot do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from slipstream.bench.load import IngestResult, ReadResult
from slipstream.bench.report import markdown
from slipstream.bench.scale import (
    SCALE_FULL,
    SCALE_QUICK,
    SCALE_READS,
    ScaleParams,
    ScaleResult,
    Step,
    _directory_size,
    fill_and_measure,
    plot,
    scale_report,
    scale_rows,
)
from slipstream.bench.scenarios import LOCAL, Pair
from slipstream.bench.services import Installed
from slipstream.cli import app


def measured_step(events: int, p50: float) -> Step:
    ingest = IngestResult(accepted=events // 2, total_seconds=2.0, complete=True)
    step = Step(events, ingest, rss=300 * 2**20, disk=events * 120)
    for read in SCALE_READS:
        for connections in (1, 50):
            step.reads[read.figure, connections] = ReadResult(
                requests=1000, seconds=2.0, p50=p50 * connections, p99=p50 * connections * 3
            )
    return step


def test_each_step_says_its_ingest_rate_memory_disk_and_every_read() -> None:
    result = ScaleResult(LOCAL, [measured_step(200_000, 0.002), measured_step(1_000_000, 0.003)])
    rows = scale_rows(result, SCALE_FULL)
    ingest = [r for r in rows if r.figure.endswith("ingest of the step")]
    assert [r.figure for r in ingest] == [
        "local/duckdb, 200,000 events: ingest of the step",
        "local/duckdb, 1,000,000 events: ingest of the step",
    ]
    assert ingest[0].value == "50,000 events/s"  # 100,000 accepted in 2 s
    assert ingest[0].notes == "RSS 300 MiB; disk 120 bytes/event"
    reads = [r for r in rows if "list 50 status=landed, 50 conn." in r.figure]
    assert [(r.value, r.p50, r.p99) for r in reads] == [
        ("500 req/s", "100 ms", "300 ms"),
        ("500 req/s", "150 ms", "450 ms"),
    ]
    assert len(rows) == 2 * (1 + 2 * len(SCALE_READS))


def test_a_pair_that_cannot_run_here_is_one_row_with_the_reason() -> None:
    missing = Pair("x/y", requires=(Installed("no_such_driver_xyz", "pip install xyz"),))
    result = fill_and_measure(missing, SCALE_QUICK, Path("/nonexistent"), lambda _: None)
    assert result.skipped is not None
    assert "no_such_driver_xyz" in result.skipped
    [row] = scale_rows(result, SCALE_QUICK)
    assert row.notes.startswith("skipped: ")
    assert "pip install xyz" in row.notes


def test_the_report_names_the_steps_and_carries_failures() -> None:
    failed = ScaleResult(LOCAL, [measured_step(200_000, 0.002)], failures=["local: it broke"])
    report = scale_report([failed], SCALE_FULL, 12.0)
    text = markdown(report)
    assert "200,000 → 1,000,000 → 2,000,000 stored events" in text
    assert "**FAILED:** local: it broke" in text


def test_the_plot_is_a_png_of_the_pairs_that_ran(tmp_path: Path) -> None:
    ran = ScaleResult(LOCAL, [measured_step(200_000, 0.002), measured_step(1_000_000, 0.004)])
    skipped = ScaleResult(Pair("x/y"), skipped="not here")
    path = tmp_path / "scale.png"
    plot([ran, skipped], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nothing = tmp_path / "none.png"
    plot([skipped], nothing)
    assert not nothing.exists()


def test_stats_read_the_hour_before_the_newest_event() -> None:
    stats = next(r for r in SCALE_READS if r.figure.startswith("stats"))
    newest = datetime(2026, 12, 7, 10, 30, 5, tzinfo=UTC)
    query = parse_qs(urlsplit(stats.path(newest)).query)
    assert query == {"bucket": ["hour"], "since": ["2026-12-07T09:30:05Z"]}


def test_the_embedded_disk_is_the_broker_and_store_files_without_logs(tmp_path: Path) -> None:
    (tmp_path / "queue.db").write_bytes(b"q" * 1000)
    (tmp_path / "queue.db-wal").write_bytes(b"w" * 500)
    (tmp_path / "warehouse.duckdb").write_bytes(b"d" * 2000)
    (tmp_path / "server.log").write_bytes(b"l" * 9999)
    assert _directory_size(tmp_path) == 3500


def test_plot_without_scale_is_refused_with_what_to_do() -> None:
    answer = CliRunner().invoke(app, ["bench", "--plot", "x.png"])
    assert answer.exit_code != 0
    assert "--plot draws the curve of --scale" in answer.output


@pytest.mark.parametrize("params", [SCALE_FULL, SCALE_QUICK])
def test_steps_only_grow(params: ScaleParams) -> None:
    assert list(params.steps) == sorted(set(params.steps))
    assert params.steps[0] > 0
