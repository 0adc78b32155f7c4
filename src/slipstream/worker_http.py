"""The worker's small HTTP side: /healthz, /readyz and /metrics on its metrics port.

A worker serves no API, but an orchestrator still needs to tell a live worker from a stuck one
and a ready one from one whose broker or store is gone. The answers come from state the runtime
keeps anyway (its health loop pings both backends every few seconds), so a probe never waits on
a backend. Served from a thread by the standard library's WSGI server, as prometheus_client does,
so it keeps answering while the event loop is busy with a batch.

The port may be reachable by more than the orchestrator, so a client cannot hold it: a connection
that sends nothing for CLIENT_TIMEOUT seconds is closed, and past MAX_CONNECTIONS at once a new
one is closed unanswered (a thread and its buffers each, otherwise without bound).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

from slipstream.runtime import Runtime, readiness

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
CLIENT_TIMEOUT = 10.0  # seconds a connection may stay silent
MAX_CONNECTIONS = 32  # probes and scrapes need a handful


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # every slot taken: close it, start no thread
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT  # applied to the socket by StreamRequestHandler.setup

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        pass


def health_app(runtime: Runtime) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(runtime.metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            ready, body = readiness(dict(runtime.backends))
            return _json(start_response, 200 if ready else 503, body)
        message = f"no route {path}; the worker serves /healthz, /readyz and /metrics"
        error = {"error": {"code": "not_found", "message": message, "details": None}}
        return _json(start_response, 404, error)

    return app


def _json(start_response: StartResponse, status: int, body: object) -> list[bytes]:
    data = orjson.dumps(body)
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def serve_worker_http(runtime: Runtime, host: str, port: int) -> WSGIServer:
    """Start serving in a daemon thread; the caller shuts the returned server down."""
    server = make_server(
        host, port, health_app(runtime), _ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server
