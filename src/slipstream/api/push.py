"""POST /push/pubsub/{ds} and /push/sns/{ds}: a broker pushes one message; 2xx once it is durable.

A pushed message takes the path of `POST /v1/datasets/{ds}/events` onto Slipstream's own broker,
invalid events included (the worker quarantines them; a 2xx then too, as pushing them again helps
nobody). One message is one event, keyed by its own id, else by the pusher's message id, so a
redelivered push lands on the same row or quarantine entry. Pub/Sub push cannot send our API keys
(a key in the push URL would leak), so /push/pubsub checks OIDC tokens when an audience is set
and is open otherwise; /push/sns trusts SNS signatures for the configured topics only. More in
docs/backends/push.md.

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
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from slipstream.api.deps import runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.errors import ApiError
from slipstream.api.ingest import RETRY_AFTER, publish_intake
from slipstream.api.routing import GuardedRoute
from slipstream.api.tracing import message_attributes
from slipstream.brokers import Outgoing
from slipstream.config import Settings
from slipstream.datasets import Dataset
from slipstream.events import EventCodec
from slipstream.intake import Intake, from_json
from slipstream.runtime import Runtime

if TYPE_CHECKING:
    from slipstream.api.push_sns import ConfirmSubscription, SnsVerifier

log = logging.getLogger("slipstream.api")

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
MAX_ATTRIBUTE = 128
OPEN_PUSH_WARNING = (
    "SLIPSTREAM_API_KEYS is set but SLIPSTREAM_PUBSUB_PUSH_AUDIENCE is not: POST /push/pubsub/* "
    "takes events from ANYONE who can reach it, without a key. Set the audience and "
    "SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT (see docs/backends/push.md), or keep that path "
    "unreachable from outside."
)
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


class SigningKey(Protocol):
    @property
    def key(self) -> Any: ...


class SigningKeys(Protocol):
    """What `jwt.PyJWKClient` offers: the key that signed a token, by the token's `kid`."""

    def get_signing_key_from_jwt(self, token: str) -> SigningKey: ...


def _not_installed(exc: ImportError) -> ApiError:
    # pyjwt[crypto] (cryptography) is optional, so the API imports without it.
    return ApiError(
        500,
        f"push verification needs {exc.name}, which is not installed: "
        "pip install 'pyjwt[crypto]' (included in 'slipstream[gcp]')",
    )


@asynccontextmanager
async def _warn_when_open(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    if app.state.api_keys and runtime.settings.pubsub_push_audience is None:
        log.warning(OPEN_PUSH_WARNING)
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
`SLIPSTREAM_PUBSUB_PUSH_AUDIENCE` is set), **503** when the broker is unavailable: Pub/Sub
retries everything but 2xx."""

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
    responses={202: {"description": "Durable on the broker, or quarantined; Pub/Sub acks"}},
)
async def pubsub_push(request: Request, ds: str) -> Response:
    runtime = runtime_of(request)
    try:
        await _check_oidc(request, runtime.settings)
        dataset = _dataset(runtime, ds)
        _check_backlog(runtime, dataset)
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
        200: {"description": "Subscription confirmed, or unsubscribe noted"},
        202: {"description": "Durable on the broker, or quarantined"},
    },
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
        raise _not_installed(exc) from None
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
    dataset = _dataset(runtime, ds)
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
    _check_backlog(runtime, dataset)
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

    The same verdicts as HTTP ingest (`intake.from_json`); a payload that is not one JSON object
    is quarantined with the reason, under `message_id`, so a redelivery is the same entry.
    """
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        intake = Intake()
        intake.rejected.append({"index": 0, "error": f"not valid JSON: {exc}"})
        intake.messages.append(Outgoing(message_id, data, attributes))
        return intake
    if isinstance(event, dict) and event.get(codec.key) is None:
        event[codec.key] = message_id
    intake = from_json(orjson.dumps([event]), codec, attributes)  # a list stays one (bad) event
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


def _dataset(runtime: Runtime, ds: str) -> Dataset:
    dataset = runtime.catalog.get(ds)
    if dataset is None:
        raise ApiError(
            404, f"no dataset named {ds!r}; known datasets: {', '.join(runtime.catalog.names)}"
        )
    return dataset


def _check_backlog(runtime: Runtime, dataset: Dataset) -> None:
    if runtime.over_backlog(dataset.name):
        raise ApiError(
            503,
            f"dataset {dataset.name!r} has {runtime.backlog[dataset.name]} events waiting, over "
            f"the bound of {runtime.settings.backlog_limit}; push again after a pause",
            headers={"Retry-After": RETRY_AFTER},
        )


async def _check_oidc(request: Request, settings: Settings) -> None:
    """401 unless the request carries a Google-signed token for our audience; 403 unless it
    names the configured service account, verified. A no-op when no audience is configured."""
    audience = settings.pubsub_push_audience
    if audience is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "an OIDC token is required: 'Authorization: Bearer JWT'", headers=challenge
        )
    try:
        import jwt
    except ImportError as exc:
        raise _not_installed(exc) from None
    try:
        keys = _pubsub_keys(request)
        key = await run_in_threadpool(keys.get_signing_key_from_jwt, token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=GOOGLE_ISSUERS,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except jwt.PyJWKClientConnectionError as exc:
        raise ApiError(
            503,
            f"could not fetch Google's signing keys ({exc}); retry shortly",
            headers={"Retry-After": RETRY_AFTER},
        ) from None
    except jwt.PyJWTError as exc:
        raise ApiError(401, f"the OIDC token is not valid: {exc}", headers=challenge) from None
    expected = settings.pubsub_push_service_account
    if claims.get("email") != expected or claims.get("email_verified") is not True:
        raise ApiError(
            403,
            f"the OIDC token is not for the service account {expected} (with a verified email); "
            "check SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT and the subscription's "
            "--push-auth-service-account",
        )


def _pubsub_keys(request: Request) -> SigningKeys:
    import jwt

    state = request.app.state
    keys: SigningKeys | None = getattr(state, "pubsub_push_keys", None)
    if keys is None:
        keys = state.pubsub_push_keys = jwt.PyJWKClient(GOOGLE_CERTS_URL, timeout=5)
    return keys


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
