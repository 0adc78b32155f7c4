"""Quarantine and dead letters: list them (read scope), replay them (admin scope)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from slipstream.api.deps import AdminDataset, ReadDataset, runtime_of
from slipstream.api.encoding import (
    BadCursor,
    decode_cursor,
    dumps,
    encode_cursor,
    json_response,
    negotiated,
)
from slipstream.api.errors import ApiError, unavailable
from slipstream.api.query import Limit
from slipstream.brokers import Outgoing
from slipstream.datasets import Dataset
from slipstream.errors import BackendUnavailable
from slipstream.events import InvalidEvent
from slipstream.stores import QuarantineQuery

router = APIRouter(tags=["quarantine and dead letters"])
REPLAY_LIMIT = 10_000
JSON = "application/json"


class ReplayRequest(BaseModel):
    ids: list[str] | None = Field(
        None,
        max_length=REPLAY_LIMIT,
        description=f"Ids to replay; omit to replay all (at most {REPLAY_LIMIT} per call).",
    )


def _position(cursor: str | None, kind: str, dataset: Dataset, size: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor, f"{kind}:{dataset.name}", size)
    except BadCursor as exc:
        raise ApiError(400, f"invalid cursor: {exc}") from None


@router.get(
    "/v1/datasets/{ds}/quarantine",
    summary="Events refused with the reason, oldest first",
)
async def quarantine(
    request: Request,
    dataset: ReadDataset,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    position = _position(cursor, "quarantine", dataset, 2)
    after = None
    if position is not None:
        try:
            after = (datetime.fromisoformat(str(position[0])), str(position[1]))
        except ValueError:
            raise ApiError(400, "invalid cursor: start again without it") from None
    try:
        rows = await runtime_of(request).store.quarantined(
            dataset, QuarantineQuery(limit=limit, after=after)
        )
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    items = [
        {"id": r.id, "reason": r.reason, "raw": r.raw, "received_at": r.received_at} for r in rows
    ]
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor(
            [last.received_at.isoformat(), last.id], f"quarantine:{dataset.name}"
        )
    return negotiated(request, dumps({"items": items, "next_cursor": next_cursor}), JSON)


@router.post(
    "/v1/datasets/{ds}/quarantine/replay",
    summary="Check quarantined events again and send the ones now valid on",
    description="Each quarantined event is validated against the current schema: the valid "
    "ones are published again and leave the quarantine; the rest stay, with their errors.",
)
async def replay_quarantine(
    request: Request,
    dataset: AdminDataset,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> Response:
    runtime = runtime_of(request)
    codec = runtime.codecs[dataset.name]
    ids = body.ids if body else None
    try:
        rows = await runtime.store.quarantined_by_id(dataset, ids, REPLAY_LIMIT)
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    messages: list[Outgoing] = []
    replayed: list[str] = []
    still_invalid: list[dict[str, str]] = []
    for row in rows:
        try:
            event = orjson.loads(row.raw)
            codec.validate(event)
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            still_invalid.append({"id": row.id, "error": str(exc)})
            continue
        # An event that came without an id keeps the one it was given in quarantine.
        key = codec.event_id(event) or row.id
        event[codec.key] = key
        messages.append(Outgoing(key, orjson.dumps(event), {"dataset": dataset.name}))
        replayed.append(row.id)
    released = 0
    if messages:
        try:
            # Publish first: a crash between the two steps duplicates nothing (the store is
            # idempotent by id) and loses nothing (the quarantine row is still there).
            await runtime.broker.publish(dataset.name, messages)
            released = await runtime.store.release_quarantined(dataset, replayed)
        except BackendUnavailable as exc:
            raise ApiError(
                503, f"replay failed, nothing was lost ({exc}); retry", headers={"Retry-After": "2"}
            ) from None
    return json_response(
        {"replayed": len(messages), "released": released, "still_invalid": still_invalid}
    )


@router.get(
    "/v1/datasets/{ds}/deadletter",
    summary="Messages that failed every delivery",
)
async def deadletter(
    request: Request,
    dataset: ReadDataset,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    position = _position(cursor, "deadletter", dataset, 1)
    after = str(position[0]) if position else None
    try:
        letters = await runtime_of(request).broker.dead_letters(dataset.name, limit, after)
    except BackendUnavailable as exc:
        raise unavailable("broker", exc) from None
    items = [
        {
            "id": d.id,
            "key": d.key,
            "reason": d.reason,
            "deliveries": d.deliveries,
            "raw": d.data.decode("utf-8", "replace"),
            "published_at": datetime.fromtimestamp(d.published_at).astimezone(),
            "dead_at": datetime.fromtimestamp(d.dead_at).astimezone(),
            # Set when `raw` is only the head of a message too big to keep whole beside its reason.
            "truncated": None if d.truncated is None else asdict(d.truncated),
        }
        for d in letters
    ]
    next_cursor = None
    if len(letters) == limit:
        next_cursor = encode_cursor([letters[-1].id], f"deadletter:{dataset.name}")
    return negotiated(request, dumps({"items": items, "next_cursor": next_cursor}), JSON)


@router.post(
    "/v1/datasets/{ds}/deadletter/replay",
    summary="Publish dead letters again",
)
async def replay_deadletter(
    request: Request,
    dataset: AdminDataset,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> Response:
    try:
        count = await runtime_of(request).broker.replay_dead_letters(
            dataset.name, body.ids if body else None
        )
    except BackendUnavailable as exc:
        raise unavailable("broker", exc) from None
    return json_response({"replayed": count})
