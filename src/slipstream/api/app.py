"""The FastAPI application: routes, error format, compression, request metrics, lifespan."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import __version__
from slipstream.api import admin, docs, health, ingest, push, query, status
from slipstream.api.body import BodyBudget, BodyLimits
from slipstream.api.declared_params import refuse_unknown_params
from slipstream.api.encoding import json_response
from slipstream.api.errors import install_error_handlers
from slipstream.api.openapi import openapi_document
from slipstream.api.point_reads import PointReads
from slipstream.api.routing import GuardedRoute
from slipstream.api.tracing import STARTUP_FAILURE, RequestContext, route_template
from slipstream.errors import SlipstreamError, reason_of
from slipstream.metrics import Metrics
from slipstream.runtime import Runtime

log = logging.getLogger("slipstream.api")
SWITCH_INTERVAL = 0.0005  # seconds; see tune_interpreter
OPEN_ACCESS_WARNING = (
    "SLIPSTREAM_API_KEYS is empty: the API is OPEN to anyone who can reach it. "
    "Fine on a laptop; set keys before exposing it (see README, 'API keys')."
)


class RequestMetrics:
    """Counts and times every request by route template (never the raw path) and dataset.

    The dataset label is the path's dataset when the datasets file declares it, "unknown" for
    any other name (a 404), and empty on routes without one — so its values stay bounded.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, datasets: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.datasets = datasets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            template = route_template(scope)
            method = scope["method"]
            named = scope.get("path_params", {}).get("ds")
            dataset = "" if named is None else named if named in self.datasets else "unknown"
            self.metrics.observe_request(
                template, method, status, dataset, time.perf_counter() - started
            )


class SlipstreamAPI(FastAPI):
    """FastAPI, with reads by id offered to the short path (api/point_reads.py) before any of
    the framework's own layers run, and the OpenAPI description of api/openapi.py."""

    point_reads: PointReads | None = None

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            self.openapi_schema = openapi_document(self)
        return self.openapi_schema

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.point_reads is not None and await self.point_reads.answer(scope, send):
            return
        await super().__call__(scope, receive, send)


def tune_interpreter() -> None:
    """Interpreter settings for a server process, applied once it has started.

    What exists by then (modules, the app, the catalog) lives as long as the process. Frozen,
    it is left out of full collections, which otherwise rescan all of it and showed up as
    40–60 ms pauses in the tail of read latency.

    The switch interval is how long a thread that wants the GIL waits before the holder is asked
    to let go. The event loop holds it while it serves requests; the store's lookup thread needs
    it for a moment after every query to hand the rows over. At the default 5 ms the lookups
    queued up behind the loop; at 0.5 ms reads by id served 15 % more requests per second with a
    lower p99 on 2 cores (docs/performance.md).
    """
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)


def create_app(runtime: Runtime, *, server_process: bool = False) -> SlipstreamAPI:
    """The app over `runtime`. A server process passes `server_process` (tune_interpreter at
    start); tests, which build many apps in one process, leave it off."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.api_keys:
            log.warning(OPEN_ACCESS_WARNING)
        try:
            await runtime.start()
        except SlipstreamError as exc:
            # Logged by the server as this one line rather than a traceback (api/tracing.py).
            setattr(app.state, STARTUP_FAILURE, f"cannot start: {reason_of(exc)}")
            raise
        if server_process:
            tune_interpreter()
        try:
            yield
        finally:
            await runtime.stop()

    app = SlipstreamAPI(
        title="Slipstream",
        version=__version__,
        summary="Events in through a broker or HTTP, into an analytics store, out through this API.",
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py from the package, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_unknown_params)],  # every route, one check
    )
    app.router.route_class = GuardedRoute
    settings = runtime.settings
    app.state.runtime = runtime
    app.state.api_keys = settings.key_scopes()
    app.state.body_limits = BodyLimits(
        settings.max_body_bytes, settings.body_timeout, BodyBudget(settings.body_memory_bytes)
    )
    install_error_handlers(app)
    for module in (ingest, query, admin, health, push, status, docs):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return json_response(
            {
                "name": "slipstream",
                "version": __version__,
                "docs": "/docs",
                "datasets": "/v1/datasets",
                "health": "/healthz",
                "ready": "/readyz",
                "metrics": "/metrics",
            }
        )

    app.point_reads = PointReads(runtime, app.state.api_keys)
    app.add_middleware(
        RequestMetrics, metrics=runtime.metrics, datasets=frozenset(runtime.catalog.names)
    )
    app.add_middleware(RequestContext)  # added last: outermost
    return app
