"""Every route takes the query parameters it declares, once each, and no others.

One check for the whole app (a dependency of every route, installed in api/app.py): a name the
route does not declare, or any name given twice, is a 400 that lists what the route takes, rather
than a parameter silently ignored (`/stats?status=delayed` once answered unfiltered counts).
The routes that filter on a dataset's fields (list and stats) declare `Filters`: there every
other name must be one of the dataset's fields, checked by `filters_from` once the caller is
known to hold the read scope (the message lists the fields).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from slipstream.api.deps import ReadDataset
from slipstream.api.errors import ApiError
from slipstream.api.params import filters_from

_ATTRIBUTE = "slipstream_query_params"


@dataclass(frozen=True, slots=True)
class Accepted:
    names: frozenset[str]  # declared by the route and its dependencies
    fields: bool  # and, as filters, the fields of the dataset in the path


async def field_filters(request: Request, dataset: ReadDataset) -> dict[str, Any]:
    return filters_from(dataset, request.query_params.multi_items(), accepted(request).names)


Filters = Annotated[dict[str, Any], Depends(field_filters)]


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    """`dependant` and its dependencies, at any depth."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def accepted(request: Request) -> Accepted:
    """What the request's route accepts, worked out from its declaration once per route."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return Accepted(frozenset(), fields=False)
    found: Accepted | None = getattr(route, _ATTRIBUTE, None)
    if found is None:
        every = list(dependants(route.dependant))
        found = Accepted(
            frozenset(p.alias for d in every for p in d.query_params),
            fields=any(d.call is field_filters for d in every),
        )
        setattr(route, _ATTRIBUTE, found)
    return found


async def refuse_unknown_params(request: Request) -> None:
    """400 for a query parameter the route does not take, or one given twice."""
    if not request.scope.get("query_string"):
        return
    route = accepted(request)
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise ApiError(400, f"query parameter {name!r} is given twice; give it once")
        seen.add(name)
        if name not in route.names and not route.fields:
            takes = ", ".join(sorted(route.names)) or "no query parameters"
            raise ApiError(
                400,
                f"unknown query parameter {name!r}: {request.url.path} takes {takes}",
                details={"parameter": name, "accepted": sorted(route.names)},
            )
