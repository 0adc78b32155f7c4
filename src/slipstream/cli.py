"""The `slipstream` command: serve, work, publish, simulate, check, bench, probe, slo."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from slipstream.config import Settings, load_settings
from slipstream.datasets import DatasetError
from slipstream.errors import BackendUnavailable, ConfigError
from slipstream.logs import configure_logging
from slipstream.otel import setup_tracing
from slipstream.probe import probe_command
from slipstream.slo.cli import slo_app

app = typer.Typer(
    help="Slipstream: events in through a broker or HTTP, into an analytics store, out over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width
Host = Annotated[
    str | None, typer.Option(help="Address to listen on [default: SLIPSTREAM_HOST or 127.0.0.1]")
]
Port = Annotated[
    int | None, typer.Option(help="Port to listen on [default: SLIPSTREAM_PORT or 8080]")
]


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        fail(str(exc))


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

    configure_observability(settings)
    runtime = _runtime(settings, with_api=True, with_worker=with_worker)
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        f"API        {base}/v1/datasets",
        f"Docs       {base}/docs",
        f"Metrics    {base}/metrics",
        f"Health     {base}/healthz  {base}/readyz",
        f"Broker     {settings.broker_url}",
        f"Store      {settings.store_url}",
        f"Datasets   {', '.join(runtime.catalog.names)} ({runtime.catalog.source})",
    ]
    if not settings.key_scopes():
        lines.append("[bold yellow]Access     OPEN: no SLIPSTREAM_API_KEYS set[/]")
    console.print(Panel("\n".join(lines), title="slipstream", expand=False), highlight=False)
    config = uvicorn.Config(
        create_app(runtime, server_process=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # RequestContext logs one line per request instead
        log_config=None,  # uvicorn's own lines go through our handler
        timeout_graceful_shutdown=int(settings.lease_seconds),
        # Bounds on the head's size and time, and on connections: api/protocol.py.
        http=bounded_protocol(settings),
        ws="none",  # no WebSocket routes: an upgrade request is answered as plain HTTP
    )
    uvicorn.Server(config).run()


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
        console.print(f"worker: {settings.broker_url} → {settings.store_url}", highlight=False)
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
    from slipstream.publish import publish_file

    settings = settings_or_exit()
    data = sys.stdin.buffer.read() if file == "-" else _read(Path(file))
    try:
        summary = asyncio.run(publish_file(settings, dataset, data))
    except (ConfigError, DatasetError, BackendUnavailable) as exc:
        fail(str(exc))
    table = Table(title=f"published to {dataset}")
    table.add_column("accepted", justify="right")
    table.add_column("rejected (quarantined)", justify="right")
    table.add_row(str(summary.accepted), str(len(summary.rejected)))
    Console().print(table)
    for item in summary.rejected[:10]:
        console.print(f"  event {item['index']}: {item['error']}", highlight=False)
    if summary.accepted == 0:
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
    api_key: Annotated[
        str | None, typer.Option(envvar="SLIPSTREAM_API_KEY", help="Key with the ingest scope")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events per request")] = 500,
    invalid_ratio: Annotated[
        float, typer.Option(help="Share of deliberately invalid events")
    ] = 0.0,
) -> None:
    """Post realistic flight events at a steady rate, with live progress and a summary."""
    from slipstream.simulate import FlightSimulator, run_simulation

    summary = asyncio.run(
        run_simulation(
            url,
            dataset,
            rate,
            duration,
            api_key=api_key,
            batch_size=batch_size,
            simulator=FlightSimulator(invalid_ratio=invalid_ratio),
        )
    )
    Console().print(summary.table())
    if summary.accepted == 0:
        raise typer.Exit(1)


@app.command()
def check() -> None:
    """Validate settings and the datasets file, and reach the broker and the store."""
    from slipstream.doctor import run_checks

    results = asyncio.run(run_checks())
    table = Table(title="slipstream check")
    table.add_column("check")
    table.add_column("result")
    for name, ok, detail in results:
        table.add_row(name, f"[green]ok[/] {detail}" if ok else f"[red]FAILED[/] {detail}")
    Console().print(table)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="A short run (seconds, not minutes)")] = False,
) -> None:
    """Measure ingest, freshness and read latency against a real server; print a table."""
    from slipstream.bench import run_bench

    raise typer.Exit(run_bench(quick=quick))


app.command("probe")(probe_command)
app.add_typer(slo_app, name="slo")


def main() -> None:
    app()
