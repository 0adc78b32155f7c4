"""GET /v1/datasets/{ds}/export: a time range of events as one Parquet file or as NDJSON,
streamed (slipstream/exports.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from slipstream import exports
from slipstream.api.answers import HEADER_REF
from slipstream.api.declared_params import Filters
from slipstream.api.deps import USES_STORE, ReadDataset, runtime_of
from slipstream.api.encoding import dumps
from slipstream.api.errors import unavailable
from slipstream.api.params import parse_time
from slipstream.api.query import HIDDEN, Since, Until
from slipstream.api.routing import GuardedRoute
from slipstream.errors import BackendUnavailable
from slipstream.stores import ListQuery, Reader

router = APIRouter(tags=["query"], route_class=GuardedRoute)
FORMATS = {
    exports.PARQUET_TYPE: {"schema": {"type": "string", "format": "binary"}},
    exports.NDJSON_TYPE: {
        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}
    },
}


@router.get(
    "/v1/datasets/{ds}/export",
    summary="Export events as Parquet or NDJSON",
    description="Every event of the range (`since`/`until` on event time, both optional) and "
    "filters (`FIELD=VALUE`, as the list takes them), newest first, streamed: Parquet (zstd, "
    f"one row group per {exports.PAGE_ROWS:,} events) unless `Accept` asks for "
    "`application/x-ndjson`. Parquet columns: the dataset's fields in order (timestamps in UTC, "
    "`json` fields as JSON text), then `extra`.",
    responses={
        200: {
            "description": "The events, as `Accept` asks",
            "content": FORMATS,
            "headers": {"Content-Disposition": {"$ref": HEADER_REF + "Content-Disposition"}},
        }
    },
    response_class=Response,
    dependencies=[USES_STORE],
)
async def export_events(
    request: Request,
    dataset: ReadDataset,
    filters: Filters,
    since: Since = None,
    until: Until = None,
) -> Response:
    query = ListQuery(
        limit=exports.PAGE_ROWS,
        filters=filters,
        since=parse_time("since", since),
        until=parse_time("until", until),
        exclude_key_prefix=HIDDEN,
    )
    store: Reader = runtime_of(request).store
    as_ndjson = exports.NDJSON_TYPE in request.headers.get("accept", "")
    try:
        if as_ndjson:
            events = await exports.first_then_rest(exports.pages(store, dataset, query))
            media_type, suffix = exports.NDJSON_TYPE, "ndjson"
            body = exports.ndjson(events, dumps)
        else:
            tables = await exports.first_then_rest(exports.tables(store, dataset, query))
            media_type, suffix = exports.PARQUET_TYPE, "parquet"
            body = exports.parquet(exports.arrow_schema(dataset), tables)
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    disposition = f'attachment; filename="{dataset.name}.{suffix}"'
    return StreamingResponse(
        body, media_type=media_type, headers={"Content-Disposition": disposition}
    )
