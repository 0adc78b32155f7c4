"""POST /v1/datasets/{ds}/events: answer 202 only once the accepted events are durable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from slipstream import otel
from slipstream.api.answers import error_answer
from slipstream.api.deps import USES_BROKER, IngestDataset, runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.errors import RETRY_AFTER, ApiError
from slipstream.api.response_models import Accepted
from slipstream.api.routing import GuardedRoute
from slipstream.api.tracing import message_attributes
from slipstream.brokers import Publisher
from slipstream.bundles import for_broker
from slipstream.datasets import Dataset
from slipstream.errors import BackendUnavailable, MessageTooLarge
from slipstream.intake import Intake, MalformedBody, from_json, from_ndjson
from slipstream.runtime import Runtime

router = APIRouter(tags=["ingest"], route_class=GuardedRoute)
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")

INGEST_DOC = """Send one JSON object, a JSON array of objects, or NDJSON
(`Content-Type: application/x-ndjson`, one object per line, CRLF and blank lines allowed).
`Content-Encoding: gzip` is accepted (one member or several, as `cat a.gz b.gz` or pigz write).

Answers **202** `{"accepted", "ids", "rejected": [{"index", "error"}]}` once every accepted event
is durable on the broker; an event without an id gets a UUIDv7. Rejected events (invalid JSON
line, schema mismatch) are kept in the dataset's quarantine with the reason, and the valid events
beside them are accepted. **422** when no event was valid, **400** when a JSON document does not
parse (the message names line and column) or the gzip data is broken, **413** over the body limit
(as sent or after decompression), **503** with `Retry-After` when the broker is unavailable or
its backlog is over the bound."""


def refuse_while_backlogged(runtime: Runtime, dataset: Dataset, retry: str) -> None:
    """503 with Retry-After while the dataset's backlog is over its bound or would take longer
    to drain than admission allows (admission.py); nothing of the request is read."""
    refusal = runtime.refusal(dataset.name)
    if refusal is not None:
        raise ApiError(
            503,
            f"{refusal.message}; nothing was accepted, {retry} after {refusal.retry_after} s",
            headers={"Retry-After": str(refusal.retry_after)},
        )


async def publish_intake(runtime: Runtime, dataset: Dataset, intake: Intake, retry: str) -> None:
    """Make every message of `intake` durable on the broker, or raise 503 (nothing accepted)."""
    if intake.messages:
        broker: Publisher = runtime.broker
        capabilities, batch = runtime.broker.capabilities, runtime.settings.batch_size
        messages = for_broker(intake.messages, capabilities, batch)
        try:
            with otel.span("publish", kind="producer", attributes=_span_fields(dataset, intake)):
                await broker.publish(dataset.name, messages)
        except BackendUnavailable as exc:
            raise ApiError(
                503,
                f"the broker is unavailable ({exc}); nothing was accepted, {retry}",
                headers={"Retry-After": RETRY_AFTER},
            ) from None
        except MessageTooLarge as exc:
            raise ApiError(413, f"{exc}; nothing was accepted, send smaller events") from None
    runtime.drain[dataset.name].published(len(intake.messages))
    metrics = runtime.metrics
    metrics.events_published.labels(dataset.name).inc(len(intake.messages))
    metrics.events_ingested.labels(dataset.name).inc(intake.accepted)
    metrics.events_rejected.labels(dataset.name).inc(len(intake.rejected))


def _span_fields(dataset: Dataset, intake: Intake) -> dict[str, str | int] | None:
    if not otel.enabled():
        return None
    return {
        "messaging.destination.name": dataset.name,
        "messaging.batch.message_count": len(intake.messages),
    }


@router.post(
    "/v1/datasets/{ds}/events",
    status_code=202,
    summary="Ingest events",
    description=INGEST_DOC,
    responses={
        202: {"model": Accepted, "description": "Accepted events are durable on the broker"},
        422: error_answer(
            "None of the events is valid; they are kept in the quarantine (details: "
            "`{accepted, ids, rejected}` with each reason)."
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/NewEvents"}},
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/NewEventLines"}},
            },
        }
    },
    dependencies=[USES_BROKER],
)
async def ingest(request: Request, dataset: IngestDataset) -> Response:
    runtime = runtime_of(request)
    refuse_while_backlogged(runtime, dataset, "retry")
    body = await request.body()  # read through api/body.py: limit, gzip, timeout
    if not body.strip():
        raise ApiError(400, "the body is empty; send a JSON object, a JSON array or NDJSON")
    codec = runtime.codecs[dataset.name]
    # One dict for every message of the request: request_id and traceparent ride along.
    attributes = {"dataset": dataset.name, **message_attributes()}
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        if content_type.lower() in NDJSON_TYPES:
            intake = from_ndjson(body, codec, attributes)
        else:
            intake = from_json(body, codec, attributes)
    except MalformedBody as exc:
        raise ApiError(400, str(exc)) from None
    await publish_intake(runtime, dataset, intake, "retry the whole request")
    result: dict[str, Any] = {
        "accepted": intake.accepted,
        "ids": intake.ids,
        "rejected": intake.rejected,
    }
    if intake.accepted == 0:
        raise ApiError(
            422,
            f"none of the {len(intake.rejected)} events is valid for dataset {dataset.name!r}; "
            "they are kept in its quarantine with the reasons listed in details",
            details=result,
        )
    return json_response(result, 202)
