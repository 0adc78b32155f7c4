"""Request ids, trace context and the one-line request log, which the request pipeline
(api/pipeline.py) applies to every HTTP request.

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
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING

from starlette.types import Message, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("slipstream.access")
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128
# Ids end up in log lines and message attributes: no spaces, quotes or control characters.
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:@+=/-]{{1,{MAX_REQUEST_ID}}}")
# Where the app's lifespan leaves the one-line reason it could not start (app.state).
STARTUP_FAILURE = "startup_failure"
# Probes and scrapers call these every few seconds; their lines would drown the rest.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_EMPTY: Mapping[str, str] = MappingProxyType({})
# Set by the request pipeline (api/pipeline.py) for the request in hand.
propagated: ContextVar[Mapping[str, str]] = ContextVar("slipstream_propagated", default=_EMPTY)


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


def new_request_id() -> str:
    """32 random hex digits. A request id only has to be unique enough to find a request's log
    lines, so it comes from the fast generator rather than the OS's (a system call each)."""
    return f"{random.getrandbits(128):032x}"


def message_attributes() -> Mapping[str, str]:
    """`request_id` and `traceparent` of the request in hand, for the messages it publishes."""
    return propagated.get()


def route_template(scope: Scope) -> str:
    """The matched route's template for logs and metric labels, never the raw path: without
    converters (`{event_id:path}` reads `{event_id}`), so labels stay as they always were."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"


def plain_startup_failure(scope: Scope, send: Send) -> Send:
    """A lifespan `send` that reports a start-up failure the app explained (a backend it cannot
    reach, a setting it cannot use) as that one line, where the framework sends a traceback."""

    async def plain(message: Message) -> None:
        explained = getattr(scope["app"].state, STARTUP_FAILURE, None)
        if message["type"] == "lifespan.startup.failed" and explained:
            message = {**message, "message": explained}
        await send(message)

    return plain


def finish_span(span: Span, method: str, route: str, status: int) -> None:
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
