"""`slipstream export` and `slipstream import`: thin typer commands over their modules."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from slipstream.cli_support import client_key, console, fail, settings_or_exit
from slipstream.datasets import DatasetError
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge

if TYPE_CHECKING:
    from slipstream.config import Settings
    from slipstream.transfer.importer import Checkpoint, Destination, Tally
    from slipstream.transfer.readers import Reading
    from slipstream.transfer.sources import Source

# Events an import leaves waiting on the broker at most before it publishes more: a live event
# arriving then waits behind about this many, a second of draining on 2 cores. Less holds the
# import back (the workers lease 2 batches of 10,000 at once): 20,000 gave 38,000 events/s
# against 110,000-131,000 (docs/performance.md).
MAX_BACKLOG = 100_000
PROGRESS = (
    TextColumn("{task.description}"),
    BarColumn(),
    TextColumn("{task.fields[events]:,} events, {task.fields[rate]:,.0f}/s"),
    TextColumn("{task.fields[refused]:,} refused"),
    TimeRemainingColumn(),
)


def export_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. flights")],
    output: Annotated[
        str, typer.Argument(help="A file, - for standard output, or s3://BUCKET/KEY")
    ],
    since: Annotated[str | None, typer.Option(help="Event time from (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option(help="Event time up to, excluded (RFC 3339)")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="FIELD=VALUE: only events whose field is the value")
    ] = None,
    format: Annotated[str, typer.Option(help="parquet or ndjson")] = "parquet",
    url: Annotated[str, typer.Option(help="Base URL of a running API")] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Key with the read scope [default: SLIPSTREAM_CLIENT_KEY]"),
    ] = None,
) -> None:
    """Write a dataset's events (a time range, filters) from a running API as Parquet or NDJSON."""
    from slipstream.transfer.download import FORMATS, ExportFailed, export, export_url, parameters

    if format not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        params = parameters(since, until, where or [])
        key = client_key(api_key, settings_or_exit())
        outcome = export(export_url(url, dataset), params, output, format, key)
    except (ConfigError, ExportFailed) as exc:
        fail(str(exc))
    if output != "-":
        console.print(f"wrote {outcome.size:,} bytes of {format} to {output}", highlight=False)


def import_command(
    sources: Annotated[
        list[str], typer.Argument(help="Files, directories or glob patterns ('data/*.ndjson.gz')")
    ],
    dataset: Annotated[str, typer.Option(help="Dataset the events belong to")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Keep progress in this file; a run cut short resumes from it"),
    ] = None,
    max_backlog: Annotated[
        int,
        typer.Option(
            min=1,
            help="Publish only while fewer events than this wait on the broker (live ones "
            "queue behind them)",
        ),
    ] = MAX_BACKLOG,
) -> None:
    """Import files of events (NDJSON, JSON, CSV, Parquet; plain, gzip or zstd) onto the broker."""
    from slipstream.publish import broker_location
    from slipstream.transfer.importer import Checkpoint
    from slipstream.transfer.readers import UnreadableFile
    from slipstream.transfer.sources import sources as files_of

    settings = settings_or_exit()
    out = Console(soft_wrap=True)
    started = time.monotonic()
    try:
        where = broker_location(settings)  # a missing embedded queue: refused before anything
        with ExitStack() as downloads:  # https:// files, downloaded; removed after
            files = list(files_of(sources, downloads))
            out.print(f"broker: {where}", highlight=False, markup=False)
            kept = Checkpoint(checkpoint)
            tally = _imported(settings, dataset, files, kept, max_backlog)
    except (ConfigError, UnreadableFile, DatasetError, BackendUnavailable, MessageTooLarge) as exc:
        resume = f"; run it again with --checkpoint {checkpoint} to go on" if checkpoint else ""
        fail(f"{exc}{resume}")
    _summary(out, dataset, tally, max(time.monotonic() - started, 1e-9))
    if tally.left_out:
        for line in tally.left_out:
            console.print(f"  {line}", highlight=False, markup=False)
        fail(
            f"{len(tally.left_out)} events were not imported, each larger than the broker's "
            "largest message: shrink them (or move their bulk elsewhere) and import the file again"
        )


def _imported(
    settings: Settings, dataset: str, files: list[Source], kept: Checkpoint, max_backlog: int
) -> Tally:
    """The import run, with a progress bar by bytes of the files read."""
    import asyncio

    from slipstream.brokers import create_broker
    from slipstream.transfer.importer import Importer

    started = time.monotonic()
    total = sum(f.size for f in files)  # bytes of the files as they lie: the ETA's measure
    with Progress(*PROGRESS, console=console, transient=True) as shown:
        task = shown.add_task("importing", total=total, events=0, rate=0.0, refused=0)

        def on_progress(tally: Tally, reading: Reading) -> None:
            rate = tally.read / max(time.monotonic() - started, 1e-9)
            done = tally.finished_bytes + reading.done()
            shown.update(task, completed=done, description=reading.source.name)
            shown.update(task, events=tally.read, rate=rate, refused=tally.refused)

        async def run() -> Tally:
            importer = Importer(settings, dataset, kept, max_backlog, on_progress)
            broker: Destination = create_broker(settings)
            await broker.open([importer.dataset.name])
            try:
                return await importer.run(files, broker)
            finally:
                await broker.close()

        return asyncio.run(run())


def _summary(out: Console, dataset: str, tally: Tally, seconds: float) -> None:
    table = Table(title=f"imported into {dataset}")
    for column in ("files", "events", "accepted", "refused (quarantined)", "skipped", "events/s"):
        table.add_column(column, justify="right")
    counts = (tally.files, tally.read, tally.accepted, tally.refused, tally.skipped)
    table.add_row(*(f"{n:,}" for n in counts), f"{tally.read / seconds:,.0f}")
    out.print(table)
    for line in tally.refusals:
        console.print(f"  {line}", highlight=False, markup=False)
    if tally.refused > len(tally.refusals):
        console.print(f"  … and {tally.refused - len(tally.refusals)} more", highlight=False)
