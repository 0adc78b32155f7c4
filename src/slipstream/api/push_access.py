"""Who may push, and what a pusher learns: the access rules of /push/pubsub and /push/sns.

Pub/Sub push cannot send our API keys (a push subscription sends no custom headers, and a key in
the push URL would end up in logs), so /push/pubsub is
- verified, with an audience set: each push carries Google's OIDC token for the configured
  service account (401 without a valid one, 403 for another account);
- closed, when API keys are set and no audience is: 403 naming the settings that open it, so a
  server whose API is closed does not take events from anyone by default;
- open, with no API keys (a laptop), or with SLIPSTREAM_PUBSUB_PUSH_OPEN=true (announced loudly).
/push/sns always requires an SNS signature for a configured topic (api/push_sns.py).

A 404 for an unknown dataset names the known ones only to a caller authenticated for the API (a
known key, as the other routes' 404s do), or to anyone when the API is open.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from slipstream.api.answers import error_answer
from slipstream.api.auth import presented_key, scopes_for
from slipstream.api.errors import RETRY_AFTER, ApiError
from slipstream.config import Settings
from slipstream.datasets import Dataset
from slipstream.runtime import Runtime

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
OPEN_PUSH_WARNING = (
    "SLIPSTREAM_API_KEYS is set and so is SLIPSTREAM_PUBSUB_PUSH_OPEN: POST /push/pubsub/* "
    "takes events from ANYONE who can reach it, without a key. Set "
    "SLIPSTREAM_PUBSUB_PUSH_AUDIENCE and SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT instead (see "
    "docs/backends/push.md), or keep that path unreachable from outside."
)
CLOSED_PUSH = (
    "POST /push/pubsub/* is closed: SLIPSTREAM_API_KEYS is set and Pub/Sub push cannot send a "
    "key. Set SLIPSTREAM_PUBSUB_PUSH_AUDIENCE and SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT to "
    "accept Pub/Sub's OIDC tokens, or SLIPSTREAM_PUBSUB_PUSH_OPEN=true to accept pushes from "
    "anyone who can reach the server (docs/backends/push.md)"
)


class SigningKey(Protocol):
    @property
    def key(self) -> Any: ...


class SigningKeys(Protocol):
    """What `jwt.PyJWKClient` offers: the key that signed a token, by the token's `kid`."""

    def get_signing_key_from_jwt(self, token: str) -> SigningKey: ...


def not_installed(exc: ImportError) -> ApiError:
    # pyjwt[crypto] (cryptography) is optional, so the API imports without it.
    return ApiError(
        500,
        f"push verification needs {exc.name}, which is not installed: "
        "pip install 'pyjwt[crypto]' (included in 'slipstream[gcp]')",
    )


PushAccess = Literal["verified", "closed", "open"]


def pubsub_access(settings: Settings, api_keys: dict[str, frozenset[str]]) -> PushAccess:
    """`verified`, `closed` or `open`, as the module docstring sets out."""
    if settings.pubsub_push_audience is not None:
        return "verified"
    return "closed" if api_keys and not settings.pubsub_push_open else "open"


async def check_pubsub_push(request: Request, settings: Settings) -> None:
    """Return when the push may go on; ApiError 401/403 (or 503: keys unavailable) otherwise."""
    access = pubsub_access(settings, request.app.state.api_keys)
    if access == "closed":
        raise ApiError(403, CLOSED_PUSH)
    if access == "verified":
        await _check_oidc(request, settings)


def pushed_dataset(request: Request, runtime: Runtime, ds: str) -> Dataset:
    """The dataset named in a push path; a 404 otherwise, naming the known datasets only to a
    caller authenticated for the API (a known key, whatever its scopes) or when it is open."""
    dataset = runtime.catalog.get(ds)
    if dataset is not None:
        return dataset
    keys: dict[str, frozenset[str]] = request.app.state.api_keys
    key = presented_key(request.scope["headers"])
    if not keys or (key is not None and scopes_for(key, keys) is not None):
        raise ApiError(
            404, f"no dataset named {ds!r}; known datasets: {', '.join(runtime.catalog.names)}"
        )
    raise ApiError(404, f"no dataset named {ds!r}")


async def _check_oidc(request: Request, settings: Settings) -> None:
    """401 unless the request carries a Google-signed token for our audience; 403 unless it
    names the configured service account, verified."""
    audience = settings.pubsub_push_audience
    assert audience is not None
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
        raise not_installed(exc) from None
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


PUBSUB_OIDC_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The OIDC token Pub/Sub push sends for the subscription's service account "
    "(SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT), for SLIPSTREAM_PUBSUB_PUSH_AUDIENCE.",
}


def describe_push_access(
    document: dict[str, Any], settings: Settings, api_keys: dict[str, frozenset[str]]
) -> None:
    """Put the push routes' access rules, as this server applies them, into its description."""
    paths: dict[str, Any] = document["paths"]
    pubsub = paths["/push/pubsub/{ds}"]["post"]
    access = pubsub_access(settings, api_keys)
    if access == "verified":
        schemes = document["components"].setdefault("securitySchemes", {})
        schemes["PubSubOidc"] = dict(PUBSUB_OIDC_SCHEME)
        pubsub["security"] = [{"PubSubOidc": []}]
        pubsub["responses"]["401"] = error_answer(
            "No OIDC token, one not valid for the audience, or two different ones.",
            "WWW-Authenticate",
        )
        pubsub["responses"]["403"] = error_answer("The token is for another service account.")
    elif access == "closed":
        pubsub["responses"]["403"] = error_answer(
            "Closed: API keys are set and neither SLIPSTREAM_PUBSUB_PUSH_AUDIENCE nor "
            "SLIPSTREAM_PUBSUB_PUSH_OPEN is."
        )
    sns = paths["/push/sns/{ds}"]["post"]
    sns["responses"]["403"] = error_answer(
        "Not a trusted SNS message: no valid signature, or a topic not in "
        "SLIPSTREAM_SNS_TOPIC_ARNS. Nothing was stored."
    )
    for operation in (pubsub, sns):
        operation["responses"] = dict(sorted(operation["responses"].items()))
