"""`slipstream probe`: one run (`--once`) or a loop that serves or pushes its metrics."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, NoReturn
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from slipstream.probe.metrics import ProbeMetrics, Pushgateway
    from slipstream.probe.run import Prober

log = logging.getLogger("slipstream.probe")


def probe_command(
    url: Annotated[
        str, typer.Option(help="Base URL of the Slipstream API, e.g. http://127.0.0.1:8080")
    ],
    dataset: Annotated[str, typer.Option(help="Dataset to probe, e.g. flights")],
    interval: Annotated[float, typer.Option(help="Seconds from one run to the next (loop)")] = 30.0,
    once: Annotated[
        bool, typer.Option("--once", help="One run: print the result, exit 0 if ok, else 1")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds a run may take, from the first request to read-back")
    ] = 10.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key with the read and ingest scopes "
            "[default: SLIPSTREAM_PROBE_API_KEY, else SLIPSTREAM_CLIENT_KEY]",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics on this port, all interfaces (loop only)")
    ] = None,
    pushgateway: Annotated[
        str | None, typer.Option(help="Pushgateway URL to push the metrics to after every run")
    ] = None,
    job: Annotated[str, typer.Option(help="Job name under which metrics are pushed")] = (
        "slipstream_probe"
    ),
) -> None:
    """Publish a probe event, read it back and compare; record round-trip time and correctness."""
    from slipstream.probe.metrics import ProbeMetrics, Pushgateway
    from slipstream.probe.run import Prober

    _check_options(url, interval, timeout, once, metrics_port, pushgateway)
    # The same log format and level settings as the server (SLIPSTREAM_LOG_FORMAT, _LOG_LEVEL).
    from slipstream.config import load_settings, revealed
    from slipstream.errors import ConfigError
    from slipstream.logs import configure_logging

    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(settings)
    api_key = api_key or revealed(settings.probe_api_key) or revealed(settings.client_key)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the results
    metrics = ProbeMetrics(dataset)
    gateway = Pushgateway(pushgateway, job, metrics) if pushgateway else None
    if gateway is not None:
        _resume(gateway)
    stop = threading.Event()
    prober = Prober(url, dataset, timeout=timeout, api_key=api_key, stop=stop)
    try:
        if once:
            _once(prober, metrics, gateway)
        _loop(prober, metrics, gateway, stop, interval, metrics_port)
    finally:
        prober.close()


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _check_options(
    url: str,
    interval: float,
    timeout: float,
    once: bool,
    metrics_port: int | None,
    pushgateway: str | None,
) -> None:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        _fail(f"--url must be an http:// or https:// URL, e.g. http://127.0.0.1:8080; got {url!r}")
    if pushgateway is not None and urlsplit(pushgateway).scheme not in ("http", "https"):
        _fail(f"--pushgateway must be an http:// or https:// URL; got {pushgateway!r}")
    if interval <= 0 or timeout <= 0:
        _fail("--interval and --timeout must be more than 0 seconds")
    if metrics_port is not None and not 0 < metrics_port < 65536:
        _fail(f"--metrics-port must be between 1 and 65535; got {metrics_port}")
    if once and metrics_port is not None:
        _fail("--metrics-port serves the loop's metrics; with --once use --pushgateway")


def _resume(gateway: Pushgateway) -> None:
    import httpx

    from slipstream.probe.run import error_reason

    try:
        gateway.resume()
    except (OSError, httpx.HTTPError, ValueError) as exc:
        log.warning(
            "cannot read earlier values from %s, counting from zero: %s",
            gateway.url,
            error_reason(exc),
        )


def _push(gateway: Pushgateway | None) -> bool:
    from slipstream.probe.run import error_reason

    if gateway is None:
        return True
    try:
        gateway.push()
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        cause = getattr(exc, "reason", None)
        reason = error_reason(cause if isinstance(cause, Exception) else exc)
        log.error("cannot push metrics to %s: %s", gateway.url, reason)
        return False
    return True


def _once(prober: Prober, metrics: ProbeMetrics, gateway: Pushgateway | None) -> NoReturn:
    result = prober.run()
    assert result is not None  # only a stop request interrupts a run, and none is made here
    metrics.record(result)
    print(result.line(), flush=True)
    pushed = _push(gateway)
    raise typer.Exit(0 if result.result == "ok" and pushed else 1)


def _loop(
    prober: Prober,
    metrics: ProbeMetrics,
    gateway: Pushgateway | None,
    stop: threading.Event,
    interval: float,
    metrics_port: int | None,
) -> None:
    from prometheus_client import start_http_server

    from slipstream.probe.run import error_reason

    server = None
    if metrics_port is not None:
        try:
            server, _ = start_http_server(metrics_port, registry=metrics.registry)
        except OSError as exc:
            _fail(f"cannot serve metrics on port {metrics_port}: {error_reason(exc)}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("probing %s every %gs: %s", prober.dataset, interval, prober.url)
    try:
        while not stop.is_set():
            started = time.monotonic()
            result = prober.run()
            if result is None:
                break
            metrics.record(result)
            if result.result == "ok":
                log.info("%s", result.line())
            else:
                log.warning("%s", result.line())
            _push(gateway)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        if server is not None:
            server.shutdown()
    log.info("stopped")
