"""The FastAPI application: its routes, its one request pipeline, its error format, its lifespan.

Every request takes one path: the request pipeline (api/pipeline.py), the router, the route
class that authorises before any body is read (api/routing.py), the endpoint; errors raised on
the way are rendered by one function (api/errors.py). Process-wide tuning (garbage collector,
switch interval) belongs to whoever starts the server (slipstream/serving.py), not to the app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp

from slipstream import __version__
from slipstream.api import admin, docs, export, health, ingest, push, query, status
from slipstream.api.body import BodyBudget, BodyLimits
from slipstream.api.declared_params import refuse_unknown_params
from slipstream.api.encoding import json_response
from slipstream.api.errors import install_error_handlers
from slipstream.api.openapi import openapi_document
from slipstream.api.pipeline import Handlers, RequestPipeline
from slipstream.api.routing import GuardedRoute
from slipstream.api.tracing import STARTUP_FAILURE
from slipstream.errors import SlipstreamError, reason_of
from slipstream.runtime import Runtime

log = logging.getLogger("slipstream.api")
OPEN_ACCESS_WARNING = (
    "SLIPSTREAM_API_KEYS is empty: the API is OPEN to anyone who can reach it. "
    "Fine on a laptop; set keys before exposing it (see README, 'API keys')."
)
INDEX = {
    "name": "slipstream",
    "version": __version__,
    "docs": "/docs",
    "datasets": "/v1/datasets",
    "health": "/healthz",
    "ready": "/readyz",
    "metrics": "/metrics",
}


class SlipstreamAPI(FastAPI):
    """FastAPI, with the OpenAPI description of api/openapi.py and a stack of two layers."""

    pipeline: Callable[[ASGIApp, Handlers], ASGIApp]  # set by create_app

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            self.openapi_schema = openapi_document(self)
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        """The request pipeline, then the router: one layer around the routes.

        FastAPI's own stack puts five layers around the router (server errors, telemetry, a body
        limit, the error handlers, an exit stack), each a wrapper on every request, and together
        they cost more of the event loop than a read by id itself. Here the pipeline hands the
        routes the app's error handlers and renders what escapes them with the same function
        (api/errors.py); the body reader (api/body.py) holds every body to its limits; tracing
        is the pipeline's (otel.py); the route class keeps the exit stack FastAPI's handlers
        expect (api/routing.py).
        """
        if self.user_middleware:
            raise TypeError("the app has one middleware, its request pipeline (api/pipeline.py)")
        handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        # The router's own stack is its routing (it has no middleware of its own).
        return self.pipeline(self.router.middleware_stack, handlers)


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan_of(runtime: Runtime) -> Lifespan:
    """Starts the runtime's backends with the app and stops them with it."""

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
        try:
            yield
        finally:
            await runtime.stop()

    return lifespan


def create_app(runtime: Runtime) -> SlipstreamAPI:
    """The app over `runtime`."""
    app = SlipstreamAPI(
        title="Slipstream",
        version=__version__,
        summary="Events in through a broker or HTTP, into an analytics store, out through this API.",
        lifespan=lifespan_of(runtime),
        docs_url=None,  # served by api/docs.py from the package, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_unknown_params)],  # every route, one check
        # The request pipeline makes the server span, when tracing is on (otel.py); FastAPI's
        # own would only nest a second one, and checks its providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.route_class = GuardedRoute
    settings = runtime.settings
    app.state.runtime = runtime
    app.state.api_keys = settings.key_scopes()
    app.state.body_limits = BodyLimits(
        settings.max_body_bytes, settings.body_timeout, BodyBudget(settings.body_memory_bytes)
    )
    install_error_handlers(app)
    app.router.add_api_route(**query.POINT_READ)
    # First of the routes: the hottest is matched before any other (the router tries in order).
    app.router.routes.insert(0, app.router.routes.pop())
    for module in (ingest, query, export, admin, health, push, status, docs):
        app.include_router(module.router)
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    datasets = frozenset(runtime.catalog.names)
    app.pipeline = functools.partial(RequestPipeline, metrics=runtime.metrics, datasets=datasets)
    return app


async def index() -> Response:
    return json_response(INDEX)
