"""Quarantine and dead letters: list them (read scope), replay them (admin scope)."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Request
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from slipstream.api.cursors import cursors_of
from slipstream.api.dataset_schemas import STORABLE_TEXT
from slipstream.api.deps import USES_BROKER, USES_STORE, AdminDataset, ReadDataset, runtime_of
from slipstream.api.encoding import dumps, json_response, negotiated
from slipstream.api.errors import ApiError, unavailable
from slipstream.api.params import text_problem
from slipstream.api.query import Cursor, Limit
from slipstream.api.response_models import (
    DeadLetterPage,
    DeadLettersReplayed,
    QuarantinePage,
    QuarantineReplayed,
)
from slipstream.api.routing import GuardedRoute
from slipstream.brokers import DeadLetterAdmin, Outgoing, Publisher
from slipstream.errors import BackendUnavailable
from slipstream.events import InvalidEvent
from slipstream.stores import Quarantine, QuarantineQuery

router = APIRouter(tags=["quarantine and dead letters"], route_class=GuardedRoute)
REPLAY_LIMIT = 10_000
JSON = "application/json"


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"id {value!r} {problem}")
    return value


StoredId = Annotated[
    str, AfterValidator(_storable), WithJsonSchema({"type": "string", "pattern": STORABLE_TEXT})
]
# The broker's dead letter ids, as the description gives them (api/openapi.py).
DeadLetterId = Annotated[str, WithJsonSchema({"$ref": "#/components/schemas/DeadLetterId"})]
IDS_DOC = f"Ids to replay; omit to replay all (at most {REPLAY_LIMIT} per call)."


class ReplayRequest(BaseModel):
    ids: list[StoredId] | None = Field(None, max_length=REPLAY_LIMIT, description=IDS_DOC)


class DeadLetterReplayRequest(BaseModel):
    ids: list[Annotated[DeadLetterId, AfterValidator(_storable)]] | None = Field(
        None, max_length=REPLAY_LIMIT, description=IDS_DOC
    )


@router.get(
    "/v1/datasets/{ds}/quarantine",
    summary="Events refused with the reason, oldest first",
    responses={200: {"model": QuarantinePage, "description": "A page of quarantined events"}},
    dependencies=[USES_STORE],
)
async def quarantine(
    request: Request,
    dataset: ReadDataset,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    cursors, query_id = cursors_of(request), f"quarantine:{dataset.name}"
    after = None
    if cursor:
        stamp, last_id = cursors.decode(cursor, query_id, (datetime, str))
        after = (stamp, last_id)
    store: Quarantine = runtime_of(request).store
    try:
        rows = await store.quarantined(dataset, QuarantineQuery(limit=limit, after=after))
    except BackendUnavailable as exc:
        raise unavailable("store", exc) from None
    items = [
        {"id": r.id, "reason": r.reason, "raw": r.raw, "received_at": r.received_at} for r in rows
    ]
    next_cursor = None
    if len(rows) == limit:
        next_cursor = cursors.encode(query_id, [rows[-1].received_at, rows[-1].id])
    return negotiated(request, dumps({"items": items, "next_cursor": next_cursor}), JSON)


@router.post(
    "/v1/datasets/{ds}/quarantine/replay",
    summary="Check quarantined events again and send the ones now valid on",
    description="Each quarantined event is validated against the current schema: the valid "
    "ones are published again and leave the quarantine; the rest stay, with their errors. "
    "Answers `replayed` (published again), `released` (removed from the quarantine by this "
    "call), `still_invalid` and `not_found` (ids asked for that are not in the quarantine).",
    response_model=QuarantineReplayed,
    dependencies=[USES_STORE, USES_BROKER],
)
async def replay_quarantine(
    request: Request,
    dataset: AdminDataset,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> Response:
    runtime = runtime_of(request)
    store: Quarantine = runtime.store
    broker: Publisher = runtime.broker
    codec = runtime.codecs[dataset.name]
    ids = body.ids if body else None
    try:
        rows = await store.quarantined_by_id(dataset, ids, REPLAY_LIMIT)
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
            await broker.publish(dataset.name, messages)
            released = await store.release_quarantined(dataset, replayed)
        except BackendUnavailable as exc:
            raise ApiError(
                503, f"replay failed, nothing was lost ({exc}); retry", headers={"Retry-After": "2"}
            ) from None
    found = {row.id for row in rows}
    not_found = [i for i in dict.fromkeys(ids or ()) if i not in found]
    return json_response(
        {
            "replayed": len(messages),
            "released": released,
            "still_invalid": still_invalid,
            "not_found": not_found,
        }
    )


@router.get(
    "/v1/datasets/{ds}/deadletter",
    summary="Messages that failed every delivery",
    responses={200: {"model": DeadLetterPage, "description": "A page of dead letters"}},
    dependencies=[USES_BROKER],
)
async def deadletter(
    request: Request,
    dataset: ReadDataset,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    broker: DeadLetterAdmin = runtime_of(request).broker
    cursors, query_id = cursors_of(request), f"deadletter:{dataset.name}"
    after = None
    if cursor:
        (after,) = cursors.decode(cursor, query_id, (str,))
        if not broker.capabilities.dead_letter_ids.admits(
            after
        ):  # signed by a deployment on another broker
            raise ApiError(400, "the cursor is not one of this broker's; start again without it")
    try:
        letters = await broker.dead_letters(dataset.name, limit, after)
    except BackendUnavailable as exc:
        raise unavailable("broker", exc) from None
    items = [
        {
            "id": d.id,
            "key": d.key,
            "reason": d.reason,
            "deliveries": d.deliveries,
            "raw": d.data.decode("utf-8", "replace"),
            "published_at": _moment(d.published_at),
            "dead_at": _moment(d.dead_at),
            # Set when `raw` is only the head of a message too big to keep whole beside its reason.
            "truncated": None if d.truncated is None else asdict(d.truncated),
        }
        for d in letters
    ]
    next_cursor = None
    if len(letters) == limit:
        next_cursor = cursors.encode(query_id, [letters[-1].id])
    return negotiated(request, dumps({"items": items, "next_cursor": next_cursor}), JSON)


@router.post(
    "/v1/datasets/{ds}/deadletter/replay",
    summary="Publish dead letters again",
    description="Publishes the dead letters named by `ids` (as the dead letter list shows "
    "them), or all of them, again; `replayed` counts those found. An id that is not of the "
    "broker's shape is a 400.",
    response_model=DeadLettersReplayed,
    dependencies=[USES_BROKER],
)
async def replay_deadletter(
    request: Request,
    dataset: AdminDataset,
    body: Annotated[DeadLetterReplayRequest | None, Body()] = None,
) -> Response:
    broker: DeadLetterAdmin = runtime_of(request).broker
    # Once each: a broker given an id twice would publish that dead letter twice.
    ids = list(dict.fromkeys(body.ids)) if body and body.ids is not None else None
    shape = broker.capabilities.dead_letter_ids
    malformed = [i for i in ids or () if not shape.admits(i)]
    if malformed:
        raise ApiError(
            400,
            f"these ids cannot name dead letters of this broker, whose ids are "
            f"{shape.description}: {', '.join(map(repr, malformed[:5]))}",
            details={"malformed_ids": malformed[:100]},
        )
    try:
        count = await broker.replay_dead_letters(dataset.name, ids)
    except BackendUnavailable as exc:
        raise unavailable("broker", exc) from None
    return json_response({"replayed": count})


def _moment(seconds: object) -> datetime | None:
    """A broker's time in seconds as a UTC datetime; None for one no datetime can hold (from a
    header set by whoever published the message straight onto the broker)."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
