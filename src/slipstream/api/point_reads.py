"""The route class of GET /v1/datasets/{ds}/events/{event_id}: a routed endpoint served without
FastAPI's per-request machinery.

Reads by id are the API's hottest call, and on a busy server the event loop saturates first.
Served like the other routes, a read cost about 190 µs of the loop's time in the app (dependency
solving and parameter validation, per-route exception wrappers and exit stacks, the search
through included routers) before the lookup, which the store coalesces across concurrent
requests; this route takes about 45 µs (docs/performance.md). It is an ordinary route otherwise:
declared with its parameters and answers like the others and so described in the OpenAPI
document, matched by the app's router, inside the one request pipeline (api/pipeline.py),
authorised by the same function as every route (api/auth.py), its errors raised to the app's
one error function (api/errors.py).

Its ASGI app resolves the endpoint's arguments itself: the unknown-parameter check, the dataset
named in the path, the event id. A declaration that asks for anything else is refused when the
route is built, so the declaration and what is served cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.convertors import PathConvertor, StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from slipstream.api.auth import CHECKED_SCOPES, authorize
from slipstream.api.declared_params import refuse_unknown_params
from slipstream.api.deps import DatasetWithScope, Uses, dataset_named
from slipstream.api.routing import declared_scopes
from slipstream.datasets import Dataset

Endpoint = Callable[[Request, Dataset, str], Coroutine[Any, Any, Response]]
PARAMETERS = ("request", "dataset", "event_id")
RESOLVED = (DatasetWithScope, Uses)


class PointReadRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._check_declaration()
        self.needed = declared_scopes(self.dependant)
        self.app = self.handle
        self.served = frozenset(self.methods or ())
        self.allow = {"Allow": ", ".join(sorted(self.served))}

    # FastAPI's `matches` and `handle` first look for the context of a route reached through an
    # included router, and Starlette's convert and merge the path's parameters; this route is
    # the app's own (api/app.py), first of its routes, and its two parameters are kept as text
    # (checked when it is built), so a match of its pattern is all it takes.
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            found = self.path_regex.match(get_route_path(scope))
            if found is not None:
                child_scope = {"endpoint": self.endpoint, "route": self}
                child_scope["path_params"] = found.groupdict()
                return Match.FULL if scope["method"] in self.served else Match.PARTIAL, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in self.served:
            raise HTTPException(405, headers=self.allow)
        state = scope["app"].state
        authorize(scope["headers"], state.api_keys, self.needed)
        scope[CHECKED_SCOPES] = self.needed
        request = Request(scope, receive)
        if scope["query_string"]:
            await refuse_unknown_params(request)
        params = scope["path_params"]
        dataset = dataset_named(state.runtime, params["ds"])
        endpoint: Endpoint = self.endpoint
        response = await endpoint(request, dataset, params["event_id"])
        await response(scope, receive, send)

    def _check_declaration(self) -> None:
        calls = [d.call for d in self.dependant.dependencies]
        unknown = [
            c for c in calls if c is not refuse_unknown_params and not isinstance(c, RESOLVED)
        ]
        code = self.endpoint.__code__
        names = code.co_varnames[: code.co_argcount]
        as_text = all(
            type(c) in (StringConvertor, PathConvertor) for c in self.param_convertors.values()
        )
        if (
            unknown
            or names != PARAMETERS
            or self.dependant.query_params
            or self.body_field
            or not as_text
        ):
            raise TypeError(
                f"{self.path}: PointReadRoute resolves only {PARAMETERS}, a dataset and Uses "
                f"dependencies and the unknown-parameter check, from text path parameters; "
                f"found parameters {names}, dependencies {calls} and path converters "
                f"{self.param_convertors}. Declare this route with GuardedRoute."
            )
