"""The `slipstream` command: serve, work, publish, simulate, check, bench, probe, slo."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from slipstream import __version__
from slipstream.cli_support import client_key, console, fail, settings_or_exit
from slipstream.config import Settings
from slipstream.datasets import DatasetError
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge
from slipstream.logs import configure_logging
from slipstream.otel import setup_tracing
from slipstream.probe import probe_command
from slipstream.registry import shown_url
from slipstream.slo.cli import slo_app
from slipstream.transfer import export_command, import_command

app = typer.Typer(
    help="Slipstream: events in through a broker or HTTP, into an analytics store, out over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
Host = Annotated[
    str | None, typer.Option(help="Address to listen on [default: SLIPSTREAM_HOST or 127.0.0.1]")
]
Port = Annotated[
    int | None, typer.Option(help="Port to listen on [default: SLIPSTREAM_PORT or 8080]")
]
SHOWN_REJECTIONS = 10  # the rest are counted, and in the quarantine with their reasons
CHECK_STATES = {"ok": "[green]ok    [/]", "FAILED": "[bold red]FAILED[/]", "--": "[dim]--    [/]"}
ClientKey = Annotated[
    str | None,
    typer.Option("--api-key", help="Key with the ingest scope [default: SLIPSTREAM_CLIENT_KEY]"),
]


def _print_version(asked: bool) -> None:
    if asked:
        print(f"slipstream {__version__}")
        raise typer.Exit()


@app.callback(no_args_is_help=True)
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    pass


def configure_observability(settings: Settings) -> None:
    configure_logging(settings)
    try:
        setup_tracing(settings)
    except ConfigError as exc:
        fail(str(exc))


def _runtime(settings: Settings, *, with_api: bool, with_worker: bool):  # type: ignore[no-untyped-def]
    from slipstream.runtime import Runtime

    try:
        return Runtime(settings, with_api=with_api, with_worker=with_worker)
    except (ConfigError, DatasetError) as exc:
        fail(str(exc))


def _serve(settings: Settings, *, with_worker: bool) -> None:
    import uvicorn

    from slipstream.api.app import create_app
    from slipstream.api.protocol import bounded_protocol
    from slipstream.serving import TunedServer

    configure_observability(settings)
    runtime = _runtime(settings, with_api=True, with_worker=with_worker)
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        f"API        {base}/v1/datasets",
        f"Docs       {base}/docs",
        f"Metrics    {base}/metrics",
        f"Status     {base}/status",
        f"Health     {base}/healthz  {base}/readyz",
        f"Broker     {escape(shown_url(settings.broker_url))}",
        f"Store      {escape(shown_url(settings.store_url))}",
        f"Datasets   {', '.join(runtime.catalog.names)} ({runtime.catalog.source})",
    ]
    if not settings.key_scopes():
        lines.append("[bold yellow]Access     OPEN: no SLIPSTREAM_API_KEYS set[/]")
    console.print(Panel("\n".join(lines), title="slipstream", expand=False), highlight=False)
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # the request pipeline logs one line per request instead
        log_config=None,  # uvicorn's own lines go through our handler
        timeout_graceful_shutdown=int(settings.lease_seconds),
        # Bounds on the head's size and time, and on connections: api/protocol.py.
        http=bounded_protocol(settings),
        ws="none",  # no WebSocket routes: an upgrade request is answered as plain HTTP
    )
    TunedServer(config).run()


@app.command()
def up(host: Host = None, port: Port = None) -> None:
    """API, worker, broker and store in one process (the embedded defaults need no servers)."""
    _serve(settings_or_exit(host=host, port=port), with_worker=True)


@app.command()
def api(host: Host = None, port: Port = None) -> None:
    """Only the HTTP API; run `slipstream worker` processes beside it."""
    _serve(settings_or_exit(host=host, port=port), with_worker=False)


@app.command()
def worker(
    metrics_port: Annotated[
        int, typer.Option(help="Port for /metrics, /healthz and /readyz; 0 turns it off")
    ] = 9464,
) -> None:
    """Only the worker: pull from the broker, write to the store. Stops cleanly on SIGTERM."""
    from slipstream.worker_http import serve_worker_http

    settings = settings_or_exit()
    configure_observability(settings)
    runtime = _runtime(settings, with_api=False, with_worker=True)
    if metrics_port:
        try:
            serve_worker_http(runtime, settings.host, metrics_port)
        except OSError as exc:
            fail(f"cannot serve the worker's metrics on port {metrics_port}: {exc.strerror}")

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await runtime.start()
        shown = f"{shown_url(settings.broker_url)} → {shown_url(settings.store_url)}"
        console.print(f"worker: {shown}", highlight=False, markup=False)
        await stopped.wait()
        await runtime.stop()

    try:
        asyncio.run(main())
    except BackendUnavailable as exc:
        fail(str(exc))


@app.command()
def publish(
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. flights")],
    file: Annotated[str, typer.Argument(help="NDJSON or JSON file, or - for standard input")],
) -> None:
    """Validate events from a file and publish them straight onto the broker."""
    from slipstream.publish import BadFile, broker_location, publish_file

    settings = settings_or_exit()
    try:
        where = broker_location(settings)
    except ConfigError as exc:
        fail(str(exc))
    data = sys.stdin.buffer.read() if file == "-" else _read(Path(file))
    out = Console(soft_wrap=True)
    out.print(f"broker: {where}", highlight=False, markup=False)
    try:
        parsed = asyncio.run(publish_file(settings, dataset, data))
    except BadFile as exc:
        fail(f"{'standard input' if file == '-' else file}: {exc}")
    except (ConfigError, DatasetError, BackendUnavailable, MessageTooLarge) as exc:
        fail(str(exc))
    table = Table(title=f"published to {dataset}")
    table.add_column("accepted", justify="right")
    table.add_column("rejected (quarantined)", justify="right")
    table.add_row(str(parsed.intake.accepted), str(len(parsed.intake.rejected)))
    out.print(table)
    rejections = parsed.rejections()
    for line in rejections[:SHOWN_REJECTIONS]:
        console.print(f"  {line}", highlight=False, markup=False)
    if len(rejections) > SHOWN_REJECTIONS:
        console.print(f"  … and {len(rejections) - SHOWN_REJECTIONS} more", highlight=False)
    if parsed.intake.accepted == 0:
        raise typer.Exit(1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Events per second")] = 1000.0,
    duration: Annotated[float, typer.Option(help="Seconds to run")] = 10.0,
    url: Annotated[str, typer.Option(help="Base URL of a running API")] = "http://127.0.0.1:8080",
    dataset: Annotated[str, typer.Option(help="Dataset to post to")] = "flights",
    api_key: ClientKey = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per request")] = 500,
    invalid_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of deliberately invalid events")
    ] = 0.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Event time of the first event (RFC 3339, or 'now'); later ones follow it, "
            "into the future when the run outpaces the clock. Default: early enough that "
            "the last event is at or before now"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Replay the same flights (not ids)")] = None,
) -> None:
    """Post realistic flight events at a steady rate, with live progress and a summary."""
    from slipstream.flights import FlightSimulator
    from slipstream.simulate import planned_events, run_simulation

    for name, value in (("--rate", rate), ("--duration", duration)):
        if value <= 0:
            raise typer.BadParameter(f"must be more than 0; got {value:g}", param_hint=name)
    first = _event_time(start)
    simulator = (
        FlightSimulator(seed, start=first, invalid_ratio=invalid_ratio)
        if first is not None
        else FlightSimulator.ending_by(
            datetime.now(UTC),
            planned_events(rate, duration),
            seed=seed,
            invalid_ratio=invalid_ratio,
        )
    )
    summary = asyncio.run(
        run_simulation(
            url,
            dataset,
            rate,
            duration,
            api_key=client_key(api_key, settings_or_exit()),
            batch_size=batch_size,
            simulator=simulator,
        )
    )
    Console().print(summary.table())
    if summary.accepted == 0:
        raise typer.Exit(1)


def _event_time(value: str | None) -> datetime | None:
    """`--start`: an RFC 3339 time (UTC when it names no offset), or `now`."""
    if value is None or value == "now":
        return None if value is None else datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected an RFC 3339 time such as 2026-11-24T06:00:00Z, or now; got {value!r}",
            param_hint="--start",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command()
def check() -> None:
    """Validate settings and the datasets file, reach the broker and the store, and ask the
    server at SLIPSTREAM_HOST:SLIPSTREAM_PORT whether it is ready. Creates nothing."""
    from slipstream.doctor import run_checks

    logging.disable(logging.WARNING)  # backends' retry warnings: each failure has its line
    results = asyncio.run(run_checks())
    out = Console(soft_wrap=True)
    for result in results:
        state = CHECK_STATES[result.state]
        out.print(f"{state}  {result.name:<8}  {escape(result.detail)}", highlight=False)
    if any(result.failed for result in results):
        raise typer.Exit(1)


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="A short run (seconds, not minutes)")] = False,
    scale: Annotated[
        bool,
        typer.Option(
            help="Fill a store in steps (200k → 1M → 2M events) and measure each figure at "
            "each step, instead of the floors' run"
        ),
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="With --scale: write the curve to this PNG file")
    ] = None,
) -> None:
    """Measure ingest, freshness and read latency against a real server; print a table."""
    from slipstream.bench import run_bench, run_scale_bench

    report = settings_or_exit().bench_report
    if scale:
        raise typer.Exit(run_scale_bench(quick=quick, report=report, plot_path=plot))
    if plot is not None:
        fail("--plot draws the curve of --scale: add --scale, or leave --plot out")
    raise typer.Exit(run_bench(quick=quick, report=report))


app.command("probe")(probe_command)
app.command("export")(export_command)
app.command("import")(import_command)
app.add_typer(slo_app, name="slo")


def main() -> None:
    app()
