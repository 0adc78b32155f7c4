"""POST /push/pubsub/{ds} and /push/sns/{ds}: a broker pushes one message; 2xx once it is durable.

A pushed message takes the path of `POST /v1/datasets/{ds}/events` onto Slipstream's own broker,
invalid events included (the worker quarantines them; a 2xx then too, as pushing them again helps
nobody). One message is one event, keyed by its own id, else by the pusher's message id, so a
redelivered push lands on the same row or quarantine entry. Who may push is api/push_access.py's
business: OIDC tokens on /push/pubsub when an audience is set, closed beside API keys unless
opened, SNS signatures for the configured topics on /push/sns. More in docs/backends/push.md.

Collaborators on `app.state`, made on first use unless a test put its own there:
`pubsub_push_keys` (a `jwt.PyJWKClient`-like key source), `sns_verifier` (an `SnsVerifier`
around a certificate fetcher) and `sns_confirm` (visits a SubscribeURL).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from slipstream.api.deps import USES_BROKER, runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.errors import RETRY_AFTER, ApiError
from slipstream.api.ingest import publish_intake, refuse_while_backlogged
from slipstream.api.push_access import (
    CLOSED_PUSH,
    OPEN_PUSH_WARNING,
    check_pubsub_push,
    not_installed,
    pubsub_access,
    pushed_dataset,
)
from slipstream.api.push_schemas import PUBSUB_ENVELOPE, SNS_MESSAGE, SNS_MESSAGE_TYPE, json_body
from slipstream.api.response_models import Accepted, SubscriptionNoted
from slipstream.api.routing import GuardedRoute
from slipstream.api.tracing import message_attributes
from slipstream.brokers import Outgoing
from slipstream.datasets import Dataset
from slipstream.events import EventCodec
from slipstream.intake import Intake, from_event
from slipstream.runtime import Runtime

if TYPE_CHECKING:
    from slipstream.api.push_sns import ConfirmSubscription, SnsVerifier

log = logging.getLogger("slipstream.api")

MAX_ATTRIBUTE = 128
# Outcomes of a push, for `slipstream_push_messages{dataset, source, outcome}`.
OUTCOMES = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "unknown_dataset",
    413: "too_large",
    415: "malformed",
    503: "unavailable",
}


@asynccontextmanager
async def _warn_when_open(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    access = pubsub_access(runtime.settings, app.state.api_keys)
    if access == "open" and app.state.api_keys:
        log.warning(OPEN_PUSH_WARNING)
    elif access == "closed":
        log.info(CLOSED_PUSH)
    yield


router = APIRouter(tags=["push"], lifespan=_warn_when_open, route_class=GuardedRoute)

PUBSUB_DOC = """The body of a Google Pub/Sub **push subscription** (the default wrapped format):
`{"message": {"data": BASE64, "attributes": {…}, "messageId": "…", "publishTime": "…"},
"subscription": "projects/…/subscriptions/…"}` (`message_id`/`publish_time` spellings too).
`data` is one JSON event. An event without an id gets the `messageId` as its id, so a redelivery
never makes a second row.

**202** `{"accepted", "ids", "rejected"}` once the event is durable on the broker, or once it was
found invalid and sent to quarantine (Pub/Sub acks either way). **400** for a body that is not a
push envelope, **401/403** for a missing or wrong OIDC token (when
`SLIPSTREAM_PUBSUB_PUSH_AUDIENCE` is set), **403** for every push when API keys are set and
neither that audience nor `SLIPSTREAM_PUBSUB_PUSH_OPEN=true` is, **404** for an unknown dataset,
**503** when the broker is unavailable: Pub/Sub retries everything but 2xx."""

SNS_DOC = """An Amazon SNS HTTP(S) subscription (raw message delivery off), by the
`x-amz-sns-message-type` header: `SubscriptionConfirmation` → SubscribeURL visited, **200**;
`Notification` → its `Message` is one JSON event (id defaults to the SNS `MessageId`), **202**
once durable or quarantined; `UnsubscribeConfirmation` → logged, **200**.

Each message needs a valid SNS signature (SignatureVersion 1 or 2, certificate from
`https://sns.<region>.amazonaws.com/…pem`) for a topic in `SLIPSTREAM_SNS_TOPIC_ARNS`: anything
else is **403**, nothing stored. **503** when the broker is unavailable or the certificate cannot
be fetched (SNS retries)."""


@router.post(
    "/push/pubsub/{ds}",
    status_code=202,
    summary="Google Pub/Sub push delivery",
    description=PUBSUB_DOC,
    responses={
        202: {
            "model": Accepted,
            "description": "Durable on the broker, or quarantined; Pub/Sub acks",
        }
    },
    openapi_extra={"requestBody": json_body(PUBSUB_ENVELOPE)},
    dependencies=[USES_BROKER],
)
async def pubsub_push(request: Request, ds: str) -> Response:
    runtime = runtime_of(request)
    try:
        await check_pubsub_push(request, runtime.settings)
        dataset = pushed_dataset(request, runtime, ds)
        refuse_while_backlogged(runtime, dataset, "push again")
        body = await request.body()
        message_id, data = pubsub_message(body)
        answer, outcome = await _take_in(runtime, dataset, data, message_id, "pubsub")
    except ApiError as exc:
        _count(runtime, ds, "pubsub", OUTCOMES.get(exc.status, "error"))
        raise
    _count(runtime, ds, "pubsub", outcome)
    return answer


@router.post(
    "/push/sns/{ds}",
    status_code=202,
    summary="Amazon SNS HTTP(S) delivery",
    description=SNS_DOC,
    responses={
        200: {
            "model": SubscriptionNoted,
            "description": "Subscription confirmed, or unsubscribe noted",
        },
        202: {"model": Accepted, "description": "Durable on the broker, or quarantined"},
    },
    openapi_extra={"requestBody": json_body(SNS_MESSAGE), "parameters": [SNS_MESSAGE_TYPE]},
    dependencies=[USES_BROKER],
)
async def sns_push(request: Request, ds: str) -> Response:
    runtime = runtime_of(request)
    try:
        answer, outcome = await _sns(request, runtime, ds)
    except ApiError as exc:
        _count(runtime, ds, "sns", OUTCOMES.get(exc.status, "error"))
        raise
    _count(runtime, ds, "sns", outcome)
    return answer


async def _sns(request: Request, runtime: Runtime, ds: str) -> tuple[Response, str]:
    if request.headers.get("x-amz-sns-rawdelivery", "").lower() == "true":
        raise _refuse_sns(
            "raw message delivery carries no signature to check; turn RawMessageDelivery off "
            "on the subscription"
        )
    body = await request.body()
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not an SNS message (not JSON: {exc})") from None
    if not isinstance(message, dict):
        raise ApiError(400, "the body is not an SNS message (expected a JSON object)")
    try:
        from slipstream.api import push_sns as sns
    except ImportError as exc:
        raise not_installed(exc) from None
    kind = request.headers.get("x-amz-sns-message-type")
    if kind != message.get("Type"):
        raise _refuse_sns(
            f"the x-amz-sns-message-type header ({kind!r}) does not match the message Type"
        )
    try:
        await _sns_verifier(request).verify(message, runtime.settings.topic_arns())
    except sns.Untrusted as exc:
        raise _refuse_sns(str(exc)) from None
    except sns.CertificateUnavailable as exc:
        raise ApiError(503, f"{exc}; retry shortly", headers={"Retry-After": RETRY_AFTER}) from None
    dataset = pushed_dataset(request, runtime, ds)
    topic = message["TopicArn"]
    if kind == sns.SUBSCRIPTION_CONFIRMATION:
        try:
            url = sns.check_sns_url(
                message.get("SubscribeURL"), sns.region_of(topic), "SubscribeURL"
            )
        except sns.Untrusted as exc:
            raise _refuse_sns(str(exc)) from None
        try:
            await _sns_confirm(request)(url)
        except Exception as exc:  # SNS sends the confirmation again on a 5xx
            log.warning("could not confirm the SNS subscription to %s: %s", topic, exc)
            raise ApiError(
                503, f"could not confirm the subscription ({exc}); retry shortly"
            ) from None
        log.info("confirmed the SNS subscription of %s to dataset %s", topic, dataset.name)
        return json_response({"confirmed": topic}, 200), "confirmed"
    if kind != sns.NOTIFICATION:
        log.info("SNS unsubscribed dataset %s from %s", dataset.name, topic)
        return json_response({"unsubscribed": topic}, 200), "unsubscribed"
    refuse_while_backlogged(runtime, dataset, "push again")
    message_id = message.get("MessageId")
    assert isinstance(message_id, str)  # signed, so present
    return await _take_in(runtime, dataset, message["Message"].encode(), message_id, "sns")


def _refuse_sns(why: str) -> ApiError:
    log.warning("refused an SNS message: %s", why)
    return ApiError(403, f"not a trusted SNS message: {why}")


def pubsub_message(body: bytes) -> tuple[str, bytes]:
    """The message id and decoded data of a push envelope; ApiError 400 when it is not one."""
    shape = (
        'expected a Pub/Sub push envelope {"message": {"data": BASE64, "messageId": "…", …}, '
        '"subscription": "…"}'
    )
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON ({exc}); {shape}") from None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise ApiError(400, f"the body has no 'message' object; {shape}")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise ApiError(400, f"the message has no messageId; {shape}")
    data = message.get("data", "")
    if not isinstance(data, str):
        raise ApiError(400, f"the message data is not a base64 string; {shape}")
    try:
        return message_id, base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"the message data is not valid base64; {shape}") from None


def one_event(
    data: bytes, codec: EventCodec, attributes: dict[str, str], message_id: str
) -> Intake:
    """One pushed message → one broker message keyed by the event id, else by `message_id`.

    The same verdicts as HTTP ingest (`intake.from_event`); a payload that is not one JSON object
    is quarantined with the reason, under `message_id`, so a redelivery is the same entry.
    """
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        intake = Intake()
        intake.rejected.append({"index": 0, "error": f"not valid JSON: {exc}"})
        intake.messages.append(Outgoing(message_id, data, attributes))
        return intake
    changed = isinstance(event, dict) and event.get(codec.key) is None
    if changed:
        event[codec.key] = message_id
    intake = from_event(event, data, codec, attributes, changed=changed)
    if intake.rejected:
        intake.messages = [Outgoing(message_id, m.data, m.attributes) for m in intake.messages]
    return intake


async def _take_in(
    runtime: Runtime, dataset: Dataset, data: bytes, message_id: str, source: str
) -> tuple[Response, str]:
    attributes = {
        "dataset": dataset.name,
        "pushed_by": source,
        "push_message_id": message_id[:MAX_ATTRIBUTE],
        **message_attributes(),  # the push request's id and trace, as for a POST
    }
    intake = one_event(data, runtime.codecs[dataset.name], attributes, message_id)
    await publish_intake(runtime, dataset, intake, "push again")
    for rejected in intake.rejected:
        log.info("quarantined pushed message %s: %s", message_id, rejected["error"])
    result = {"accepted": intake.accepted, "ids": intake.ids, "rejected": intake.rejected}
    return json_response(result, 202), "accepted" if intake.accepted else "quarantined"


def _sns_verifier(request: Request) -> SnsVerifier:
    from slipstream.api.push_sns import SnsVerifier, fetch_certificate

    state = request.app.state
    verifier: SnsVerifier | None = getattr(state, "sns_verifier", None)
    if verifier is None:
        verifier = state.sns_verifier = SnsVerifier(fetch_certificate)
    return verifier


def _sns_confirm(request: Request) -> ConfirmSubscription:
    from slipstream.api.push_sns import confirm_subscription

    confirm: ConfirmSubscription | None = getattr(request.app.state, "sns_confirm", None)
    return confirm if confirm is not None else confirm_subscription


def _count(runtime: Runtime, ds: str, source: str, outcome: str) -> None:
    dataset = ds if ds in runtime.catalog.names else "unknown"  # labels stay bounded
    runtime.metrics.push_messages.labels(dataset, source, outcome).inc()
