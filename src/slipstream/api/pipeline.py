"""The one middleware every HTTP request passes: its request id and trace context, its security
headers, its metrics and its access-log line.

One layer rather than one per concern, because each ASGI middleware wraps `send` and that costs
on every request, the hottest (reads by id) included. Inside it, errors are rendered by the app's
one error function (api/errors.py), so every answer — 404s, 500s, refusals before the body —
carries the request id and the security headers.

`X-Request-ID` is kept when it is short and plain (else replaced by a fresh one) and echoed on the
response; a W3C `traceparent` is continued. Both go into the log context and into the attributes
of the messages the request publishes (api/tracing.py), so the worker's lines name them too.
The dataset label of the metrics is the path's dataset when the datasets file declares it,
"unknown" for any other name (a 404), and empty on routes without one, so its values stay bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from slipstream import logs, otel
from slipstream.api.errors import error_answer
from slipstream.api.headers import SECURITY_HEADERS
from slipstream.api.tracing import (
    REQUEST_ID,
    finish_span,
    log_request,
    new_request_id,
    plain_startup_failure,
    propagated,
    route_template,
    valid_request_id,
)
from slipstream.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("slipstream.api")
REQUEST_ID_HEADER = REQUEST_ID.encode()
Handlers = Mapping[Any, ExceptionHandler]


class _Answer:
    """`send` that stamps the answer's head with the request id and the security headers, and
    remembers its status for the metrics and the log line."""

    __slots__ = ("header", "send", "status")

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.header = (REQUEST_ID_HEADER, request_id.encode())
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self.header, *SECURITY_HEADERS]
        await self.send(message)


class RequestPipeline:
    """Outermost middleware of the app (api/app.py)."""

    def __init__(
        self,
        app: ASGIApp,
        handlers: Handlers | None = None,
        *,
        metrics: Metrics,
        datasets: frozenset[str],
    ) -> None:
        self.app = app
        # Where Starlette's request handlers (FastAPI's routes) look up the app's error handlers.
        self.handlers: tuple[dict[Any, ExceptionHandler], dict[int, ExceptionHandler]] = (
            dict(handlers or {}),
            {},
        )
        self.metrics = metrics
        self.datasets = datasets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = plain_startup_failure(scope, send)
            await self.app(scope, receive, send)
            return
        request_id, incoming = _identity(scope)
        if not otel.enabled():
            await self._serve(scope, receive, send, request_id, incoming, None)
            return
        with otel.span(scope["method"], kind="server", traceparent=incoming) as span:
            await self._serve(scope, receive, send, request_id, otel.current_traceparent(), span)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        traceparent: str | None,
        span: Span | None,
    ) -> None:
        carried = {"request_id": request_id}
        trace_id = None
        if traceparent is not None:
            carried["traceparent"] = traceparent
            trace_id = traceparent.split("-")[1]
        tokens = (
            logs.request_id.set(request_id),
            logs.trace_id.set(trace_id),
            propagated.set(MappingProxyType(carried)),
        )
        answer = _Answer(send, request_id)
        started = time.perf_counter()
        scope["starlette.exception_handlers"] = self.handlers
        try:
            await self.app(scope, receive, answer)
        except Exception as exc:
            # What the routes' own handlers did not answer (the router's 404 and 405, errors of
            # routes served without FastAPI's handler, the unexpected) is answered here, by the
            # same function, inside the request's context: these answers too carry the request
            # id and the security headers, and a 500's log line names the request.
            if answer.status is not None:  # the answer has begun: the server cuts the connection
                log.exception(
                    "error after the answer began on %s %s", scope["method"], scope["path"]
                )
                raise
            await error_answer(Request(scope), exc)(scope, receive, answer)
        finally:
            status = answer.status or 500
            route = route_template(scope)
            if span is not None:
                finish_span(span, scope["method"], route, status)
            self._observe(scope, route, status, started)
            logs.request_id.reset(tokens[0])
            logs.trace_id.reset(tokens[1])
            propagated.reset(tokens[2])

    def _observe(self, scope: Scope, route: str, status: int, started: float) -> None:
        method = scope["method"]
        named = scope.get("path_params", {}).get("ds")
        dataset = "" if named is None else named if named in self.datasets else "unknown"
        self.metrics.observe_request(route, method, status, dataset, time.perf_counter() - started)
        log_request(scope, method, route, status, started)


def _identity(scope: Scope) -> tuple[str, str | None]:
    """The request's id (its own when usable, else a new one) and the valid `traceparent` it
    continues, if any, in one pass over its headers."""
    request_id: str | None = None
    traceparent: str | None = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and request_id is None:
            request_id = valid_request_id(value.decode("latin-1")) or ""
        elif name == b"traceparent" and traceparent is None:
            traceparent = value.decode("latin-1")
    if traceparent is not None and otel.parse_traceparent(traceparent) is None:
        traceparent = None
    return request_id or new_request_id(), traceparent
