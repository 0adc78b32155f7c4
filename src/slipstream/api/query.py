"""Reads: one event, lists with filters and keyset cursor, stats per bucket, dataset overview."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import WithJsonSchema
from starlette.responses import Response

from slipstream.api.auth import require
from slipstream.api.cursors import NOT_OURS, cursors_of, fingerprint
from slipstream.api.dataset_schemas import DATASET_FIELD, STORABLE_TEXT, TIME_OR_UNSET
from slipstream.api.declared_params import Filters
from slipstream.api.deps import USES_STORE, ReadDataset, runtime_of
from slipstream.api.encoding import EncodedJSON, dumps, ndjson, negotiated, to_csv
from slipstream.api.errors import ApiError, unavailable
from slipstream.api.params import checked_text, parse_time
from slipstream.api.point_reads import PointReadRoute
from slipstream.api.response_models import DatasetsOverview, Event, EventPage, Stats
from slipstream.api.routing import GuardedRoute
from slipstream.errors import BackendUnavailable
from slipstream.events import EXTRA_COLUMN, HIDDEN_KEY_PREFIX
from slipstream.stores import ListQuery, Reader, StatsQuery, Summaries
from slipstream.stores.values import position_text, position_time

router = APIRouter(tags=["query"], route_class=GuardedRoute)
Limit = Annotated[int, Query(ge=1, le=1000, description="Most items per page.")]
Since = Annotated[
    str | None,
    Query(description="Event time from (inclusive), RFC 3339; empty: unset."),
    WithJsonSchema(TIME_OR_UNSET),
]
Until = Annotated[
    str | None,
    Query(description="Event time up to (exclusive), RFC 3339; empty: unset."),
    WithJsonSchema(TIME_OR_UNSET),
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
EventId = Annotated[
    str,
    Path(description="The event's id."),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": STORABLE_TEXT}),
]
PAGE_FORMATS = {
    # One event per line, described as the array of them (as a request body in NDJSON is).
    "application/x-ndjson": {
        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}
    },
    "text/csv": {"schema": {"type": "string"}, "example": "id,flight_id,…\r\nLA800-1,…\r\n"},
}
# Synthetic probe events (docs/probe.md) stay out of lists, stats and the overview's counts, so
# a steady probe cannot hide a producer that went quiet; reads by id still find them.
HIDDEN = HIDDEN_KEY_PREFIX


def page_response(
    request: Request, columns: list[str], items: list[dict[str, Any]], next_cursor: str | None
) -> Response:
    accept = request.headers.get("accept", "application/json")
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    if "application/x-ndjson" in accept:
        return negotiated(request, ndjson(items), "application/x-ndjson", headers)
    if "text/csv" in accept:
        return negotiated(request, to_csv(columns, items), "text/csv", headers)
    body = dumps({"items": items, "next_cursor": next_cursor})
    return negotiated(request, body, "application/json", headers)


async def get_event(request: Request, dataset: ReadDataset, event_id: EventId) -> Response:
    """The event as JSON, from the read cache or the store; ApiError 404/503 otherwise."""
    runtime = runtime_of(request)
    body = runtime.read_cache.get(dataset.name, event_id)
    if body is None:  # an id in the cache was stored, so it passed the check below
        checked_text("event id", event_id)
        store: Reader = runtime.store
        try:
            row = await store.get(dataset, event_id)
        except BackendUnavailable as exc:
            raise unavailable("store", exc) from None
        if row is None:
            raise ApiError(404, f"no event {event_id!r} in dataset {dataset.name!r} (yet)")
        body = dumps(row)
        runtime.read_cache.put(dataset.name, event_id, body)
    return EncodedJSON(body)


# `:path`: an event id may hold "/" (sent as %2F), and must be readable like any other.
# Added to the app's own router (api/app.py), not through an included router, which would
# build FastAPI's handler for it.
POINT_READ: dict[str, Any] = {
    "path": "/v1/datasets/{ds}/events/{event_id:path}",
    "endpoint": get_event,
    "methods": ["GET"],
    "tags": ["query"],
    "summary": "One event by id",
    "responses": {200: {"model": Event, "description": "The event"}},
    "dependencies": [USES_STORE],
    "route_class_override": PointReadRoute,
}


@router.get(
    "/v1/datasets/{ds}/events",
    summary="List events, newest first",
    description="Filter with `FIELD=VALUE` on any declared field (equality), `since`/`until` on "
    "event time. Page with `cursor` (from `next_cursor`). `Accept: application/x-ndjson` or "
    "`text/csv` change the format; those put the next cursor in the `X-Next-Cursor` header.",
    responses={
        200: {
            "model": EventPage,
            "description": "A page of events, as `Accept` asks",
            "content": PAGE_FORMATS,
            "headers": {"X-Next-Cursor": {"$ref": "#/components/headers/X-Next-Cursor"}},
        }
    },
    dependencies=[USES_STORE],
)
async def list_events(
    request: Request,
    dataset: ReadDataset,
    filters: Filters,
    limit: Limit = 100,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
) -> Response:
    start, end = parse_time("since", since), parse_time("until", until)
    query_id = "events:" + fingerprint(dataset.name, filters, start, end)
    cursors = cursors_of(request)
    after = None
    if cursor:
        stamp, key = cursors.decode(cursor, query_id, (str, str))
        try:
            after = (position_time(stamp), key)
        except ValueError:
            raise ApiError(400, f"the cursor {NOT_OURS}; start again without it") from None
    query = ListQuery(
        limit=limit,
        filters=filters,
        since=start,
        until=end,
        after=after,
        exclude_key_prefix=HIDDEN,
    )
    store: Reader = runtime_of(request).store
    try:
        items = await store.list(dataset, query)
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    next_cursor = None
    if len(items) == limit:
        last = items[-1]
        stamp = position_text(last[dataset.event_time])
        next_cursor = cursors.encode(query_id, [stamp, last[dataset.key]])
    return page_response(request, [*dataset.field_names, EXTRA_COLUMN], items, next_cursor)


@router.get(
    "/v1/datasets/{ds}/stats",
    summary="Counts and averages per time bucket",
    description="Counts per `bucket` of event time (and per value of `group_by`), with the "
    "average of every numeric field as `avg_<field>`. Filter with `FIELD=VALUE` on any declared "
    "field (equality) and `since`/`until` on event time, as the list does.",
    responses={200: {"model": Stats, "description": "Counts per bucket"}},
    dependencies=[USES_STORE],
)
async def stats(
    request: Request,
    dataset: ReadDataset,
    filters: Filters,
    bucket: Literal["minute", "hour", "day"] = "hour",
    group_by: Annotated[
        str | None,
        Query(description="A declared field to group by."),
        WithJsonSchema({"type": "string", DATASET_FIELD: True}),
    ] = None,
    since: Since = None,
    until: Until = None,
) -> Response:
    if group_by is not None:
        spec = dataset.field(group_by)
        if spec is None or spec.type == "json":
            raise ApiError(
                400,
                f"group_by={group_by!r} must name a non-json field of {dataset.name!r}: "
                f"{', '.join(dataset.field_names)}",
            )
    query = StatsQuery(
        bucket=bucket,
        group_by=group_by,
        filters=filters,
        since=parse_time("since", since),
        until=parse_time("until", until),
        exclude_key_prefix=HIDDEN,
    )
    store: Reader = runtime_of(request).store
    try:
        items = await store.stats(dataset, query)
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    body = dumps({"bucket": bucket, "group_by": group_by, "items": items})
    return negotiated(request, body, "application/json")


@router.get(
    "/v1/datasets",
    summary="Datasets, their schemas, row counts and freshness",
    responses={200: {"model": DatasetsOverview, "description": "Every dataset"}},
    dependencies=[Depends(require("read")), USES_STORE],
)
async def datasets(request: Request) -> Response:
    runtime = runtime_of(request)
    store: Summaries = runtime.store
    now = datetime.now(UTC)
    out = []
    for dataset in runtime.catalog:
        try:
            summary = await store.summary(dataset, exclude_key_prefix=HIDDEN)
        except BackendUnavailable as exc:
            raise unavailable("store", exc) from None
        out.append(
            {
                "name": dataset.name,
                "description": dataset.description,
                "key": dataset.key,
                "event_time": dataset.event_time,
                "retention_seconds": dataset.retention.total_seconds()
                if dataset.retention
                else None,
                "fields": [f.model_dump() for f in dataset.fields],
                "rows": summary.rows,
                "quarantined": summary.quarantined,
                "backlog": runtime.backlog.get(dataset.name, 0),
                "newest_event_time": summary.newest_event_time,
                "last_stored_at": summary.last_stored_at,
                "seconds_since_last_write": (now - summary.last_stored_at).total_seconds()
                if summary.last_stored_at
                else None,
            }
        )
    return negotiated(request, dumps({"datasets": out}), "application/json")
