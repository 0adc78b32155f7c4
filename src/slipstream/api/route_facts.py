"""What a route is, read from its declaration: the facts its documented answers follow from.

Everything here comes from what the route declares in code and the server acts on: the scopes
of its dependencies (api/auth.py, checked by api/routing.py), its path parameters, its body (a
model FastAPI parses, or one the handler reads and describes in `openapi_extra`), the backends
it declares with `USES_STORE`/`USES_BROKER` (api/deps.py), and whether it filters on a
dataset's fields (api/declared_params.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, compile_path

from slipstream.api.answers import RouteFacts
from slipstream.api.declared_params import dependants, field_filters
from slipstream.api.deps import Uses
from slipstream.api.routing import declared_scopes

DATASET_PARAMETER = "ds"  # a dataset's name: each dataset gets its own operations


@dataclass(frozen=True, slots=True)
class DescribedRoute:
    """A route the OpenAPI description shows, as mounted (prefixes, the app's and routers'
    dependencies included)."""

    path: str  # without converters, as the description spells it
    methods: tuple[str, ...]  # lower case, as the description spells them
    declared: frozenset[str]  # statuses the route documents itself
    facts: RouteFacts
    filters: bool  # it takes `FIELD=VALUE` filters on the dataset's fields


def described_routes(routes: list[BaseRoute]) -> list[DescribedRoute]:
    described = []
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            assert context.path is not None  # an APIRoute has both
            assert context.methods is not None
            every = list(dependants(context.dependant))
            described.append(
                DescribedRoute(
                    # As the description spells it: `{event_id:path}` is `{event_id}` there.
                    path=compile_path(context.path)[1],
                    methods=tuple(sorted(m.lower() for m in context.methods)),
                    declared=frozenset(str(status) for status in context.responses),
                    facts=_facts(context, every),
                    filters=any(d.call is field_filters for d in every),
                )
            )
    return described


def _facts(route: RouteContext, every: list[Dependant]) -> RouteFacts:
    backends = {d.call.backend for d in every if isinstance(d.call, Uses)}
    lookups = {p.alias for d in every for p in d.path_params} - {DATASET_PARAMETER}
    return RouteFacts(
        scopes=declared_scopes(route.dependant),
        lookups=tuple(sorted(lookups)),
        body=route.body_field is not None or "requestBody" in (route.openapi_extra or {}),
        backends=tuple(b for b in ("store", "broker") if b in backends),
    )
