"""The route class of every API route: authorise first, then hand the handler the body reader.

FastAPI reads and parses a route's body before it solves the route's dependencies, so a scope
check made in a dependency comes after an anonymous client's body has been buffered and parsed.
Here the scopes a route declares (api/auth.py `require`, the dataset dependencies of api/deps.py)
are collected once, when the route is built, and checked from the raw headers before FastAPI's
handler runs; the handler then gets a request whose `receive` is the body reader (api/body.py),
so every route that takes a body reads it under one limit. Errors raised here are ApiErrors,
rendered by the app's handlers with the request id like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from slipstream.api.auth import CHECKED_SCOPES, Requires, authorize
from slipstream.api.body import BodyLimits, BodyReader

EXIT_STACK = "fastapi_middleware_astack"
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def declared_scopes(dependant: Dependant) -> frozenset[str]:
    """The scopes declared by the dependencies of a route, at any depth."""
    found: set[str] = set()
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Requires):
            found.add(dependency.call.scope)
        found |= declared_scopes(dependency)
    return frozenset(found)


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        needed = declared_scopes(self.dependant)

        async def guarded(request: Request) -> Response:
            state = request.app.state
            authorize(request.scope["headers"], state.api_keys, needed)
            request.scope[CHECKED_SCOPES] = needed
            limits: BodyLimits = state.body_limits
            reader = BodyReader(request.scope, request.receive, limits)
            try:
                # FastAPI's handler keeps what it must close after the request here (the app's
                # stack, api/app.py, has no layer of FastAPI's to put it in the scope).
                async with AsyncExitStack() as stack:
                    request.scope[EXIT_STACK] = stack
                    return await handle(Request(request.scope, reader.receive))
            finally:
                reader.close()

        return guarded
