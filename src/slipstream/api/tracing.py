"""Request id and trace context for every HTTP request, its one-line request log, and the
security headers of every answer (api/headers.py).

`X-Request-ID` is kept when it is short and plain (else replaced by a fresh one) and echoed on
the response; a W3C `traceparent` is continued. Both go into the log context and into the
attributes of the messages the request publishes, so the worker's lines name them too.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import logs, otel
from slipstream.api.errors import INTERNAL_MESSAGE, error_response
from slipstream.api.headers import SECURITY_HEADERS

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("slipstream.access")
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128
# Ids end up in log lines and message attributes: no spaces, quotes or control characters.
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:@+=/-]{{1,{MAX_REQUEST_ID}}}")
# Probes and scrapers call these every few seconds; their lines would drown the rest.
# Where the app's lifespan leaves the one-line reason it could not start (app.state).
STARTUP_FAILURE = "startup_failure"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_EMPTY: Mapping[str, str] = MappingProxyType({})
_propagated: ContextVar[Mapping[str, str]] = ContextVar("slipstream_propagated", default=_EMPTY)


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


def new_request_id() -> str:
    """32 random hex digits. A request id only has to be unique enough to find a request's log
    lines, so it comes from the fast generator rather than the OS's (a system call each)."""
    return f"{random.getrandbits(128):032x}"


def message_attributes() -> Mapping[str, str]:
    """`request_id` and `traceparent` of the request in hand, for the messages it publishes."""
    return _propagated.get()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class _Stamped:
    """`send` that stamps the answer's head with the request id and the security headers."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.header = (REQUEST_ID.encode(), request_id.encode())
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self.header, *SECURITY_HEADERS]
        await self.send(message)


class RequestContext:
    """Outermost middleware: everything inside, error answers included, sees the request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = _plain_startup_failure(scope, send)
            await self.app(scope, receive, send)
            return
        request_id = valid_request_id(_header(scope, REQUEST_ID.encode())) or new_request_id()
        incoming = _header(scope, b"traceparent")
        if otel.parse_traceparent(incoming) is None:
            incoming = None
        method = scope["method"]
        # Recent FastAPI versions start their own server span when a tracer provider is set;
        # a second one would only split the trace, so continue theirs when it is there.
        outer = otel.current_traceparent()
        server = otel.span(method, kind="server", traceparent=incoming) if outer is None else None
        with server or nullcontext() as span:
            traceparent = outer or otel.current_traceparent() or incoming
            parsed = otel.parse_traceparent(traceparent)
            propagated = {"request_id": request_id}
            if traceparent is not None:
                propagated["traceparent"] = traceparent
            tokens = (
                logs.request_id.set(request_id),
                logs.trace_id.set(parsed[0] if parsed else None),
                _propagated.set(MappingProxyType(propagated)),
            )
            answer = _Stamped(send, request_id)
            started = time.perf_counter()
            try:
                await self.app(scope, receive, answer)
            except Exception:
                if answer.status is None:
                    # Answered here rather than by the app's handler, which runs outside every
                    # middleware, so this 500 too carries the request id and the security
                    # headers; that handler still logs the error.
                    response = error_response(500, "internal", INTERNAL_MESSAGE)
                    await response(scope, receive, answer)
                raise
            finally:
                status = answer.status or 500
                route = route_template(scope)
                if span is not None:
                    _finish(span, method, route, status)
                log_request(scope, method, route, status, started)
        # Reached without an exception only: an unhandled one goes on to the error handler,
        # which runs outside every middleware, and its log line should still name the request.
        logs.request_id.reset(tokens[0])
        logs.trace_id.reset(tokens[1])
        _propagated.reset(tokens[2])


def route_template(scope: Scope) -> str:
    """The matched route's template for logs and metric labels, never the raw path: without
    converters (`{event_id:path}` reads `{event_id}`), so labels stay as they always were."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"


def _plain_startup_failure(scope: Scope, send: Send) -> Send:
    """A lifespan `send` that reports a start-up failure the app explained (a backend it cannot
    reach, a setting it cannot use) as that one line, where the framework sends a traceback."""

    async def plain(message: Message) -> None:
        explained = getattr(scope["app"].state, STARTUP_FAILURE, None)
        if message["type"] == "lifespan.startup.failed" and explained:
            message = {**message, "message": explained}
        await send(message)

    return plain


def _finish(span: Span, method: str, route: str, status: int) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.request.method", method)
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:  # a 4xx is the client's mistake, not the server's
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR)


def log_request(scope: Scope, method: str, route: str, status: int, started: float) -> None:
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields: dict[str, object] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if (dataset := scope.get("path_params", {}).get("ds")) is not None:
        fields["dataset"] = str(dataset)[:64]
    log.log(level, "%s %s %d", method, route, status, extra=fields)
