"""The FastAPI application: routes, error format, compression, request metrics, lifespan."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import __version__
from slipstream.api import admin, health, ingest, push, query, status
from slipstream.api.encoding import json_response
from slipstream.api.errors import install_error_handlers
from slipstream.api.point_reads import PointReads
from slipstream.api.tracing import RequestContext
from slipstream.metrics import Metrics
from slipstream.runtime import Runtime

log = logging.getLogger("slipstream.api")
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
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            named = scope.get("path_params", {}).get("ds")
            dataset = "" if named is None else named if named in self.datasets else "unknown"
            self.metrics.http_requests.labels(template, method, str(status), dataset).inc()
            self.metrics.http_latency.labels(template, method, dataset).observe(
                time.perf_counter() - started
            )


def create_app(runtime: Runtime, *, freeze_heap: bool = False) -> FastAPI:
    """The app over `runtime`. A server process passes `freeze_heap` (see the lifespan); tests,
    which build many apps in one process, leave it off."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.api_keys:
            log.warning(OPEN_ACCESS_WARNING)
        await runtime.start()
        if freeze_heap:
            # What exists now (modules, the app, the catalog) lives as long as the process.
            # Frozen, it is left out of full collections, which otherwise rescan all of it and
            # showed up as 40–60 ms pauses in the tail of read latency.
            gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Slipstream",
        version=__version__,
        summary="Events in through a broker or HTTP, into an analytics store, out through this API.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    app.state.api_keys = runtime.settings.key_scopes()
    install_error_handlers(app)
    for module in (ingest, query, admin, health, push, status):
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

    # Added first, so it runs inside every other middleware (metrics, request ids) and they
    # see the reads it answers like any other request.
    app.add_middleware(PointReads, runtime=runtime, api_keys=app.state.api_keys)
    app.add_middleware(
        RequestMetrics, metrics=runtime.metrics, datasets=frozenset(runtime.catalog.names)
    )
    app.add_middleware(RequestContext)  # added last: outermost
    return app
