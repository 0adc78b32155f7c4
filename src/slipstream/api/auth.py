"""API keys with scopes, decided by one function for every path: `authorize`.

Clients send `X-API-Key: KEY` or `Authorization: Bearer KEY`; X-API-Key wins. `authorize` reads the
raw header list of the ASGI scope; the route class of every route (api/routing.py) calls it before
the route's body is read or its dependencies run.
With no keys configured the API is open (local use); the server says so loudly at start.

Routes declare the scopes they need with `require(scope)` (or a dataset dependency of api/deps.py);
api/routing.py collects the declarations when the route is built and checks them before the
route's body is read.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from starlette.requests import Request

from slipstream.api.errors import ApiError
from slipstream.config import Scope

Headers = Iterable[tuple[bytes, bytes]]
CHALLENGE = {"WWW-Authenticate": "Bearer"}
# Set in the ASGI scope by the route class once the declared scopes are checked.
CHECKED_SCOPES = "slipstream.checked_scopes"


def presented_key(headers: Headers) -> str | None:
    """The API key the request carries, or None; ApiError 401 when it carries two.

    Two X-API-Key headers, or two Authorization headers, with different values are refused:
    servers and proxies disagree on which copy counts, so such a request has no one meaning.
    """
    api_key: bytes | None = None
    authorization: bytes | None = None
    for name, value in headers:
        if name == b"x-api-key":
            api_key = _only(api_key, value, "X-API-Key")
        elif name == b"authorization":
            authorization = _only(authorization, value, "Authorization")
    # X-API-Key first: behind an identity-aware proxy (Cloud Run IAM, an OIDC gateway) the
    # Authorization header carries the platform's token, and the API key travels beside it.
    if api_key is not None:
        return api_key.decode("latin-1")
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def _only(seen: bytes | None, value: bytes, header: str) -> bytes:
    if seen is not None and seen != value:
        raise ApiError(
            401,
            f"the request has two {header} headers with different values; send one",
            headers=CHALLENGE,
        )
    return value


def scopes_for(key: str, keys: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    found: frozenset[str] | None = None
    for known, scopes in keys.items():
        # Compare against every key in constant time, so timing tells nothing about near misses.
        if hmac.compare_digest(known.encode(), key.encode()):
            found = scopes
    return found


def authorize(headers: Headers, keys: Mapping[str, frozenset[str]], needed: frozenset[str]) -> None:
    """Raise 401/403 unless a request with `headers` may use a route that needs `needed`.

    Ambiguous credentials are refused on every route, open ones included: a route that checks a
    token of its own (Pub/Sub push) then reads the one Authorization header there is.
    """
    key = presented_key(headers)
    if not keys or not needed:
        return
    if key is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers=CHALLENGE,
        )
    scopes = scopes_for(key, keys)
    if scopes is None:
        raise ApiError(401, "the API key is not known", headers=CHALLENGE)
    if missing := needed - scopes:
        raise ApiError(
            403,
            f"this API key lacks the '{', '.join(sorted(missing))}' scope; "
            f"it has: {', '.join(sorted(scopes))}",
        )


class Requires:
    """A route dependency that declares the scope the route needs.

    The check itself runs in the route class, before the body is read; here the dependency only
    makes sure that happened, so a route built without that class fails closed (500) instead
    of answering without a key.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def verify(self, request: Request) -> None:
        if self.scope not in request.scope.get(CHECKED_SCOPES, ()):
            raise RuntimeError(
                f"{request.url.path}: scope {self.scope!r} was not checked; the route must be "
                "built by slipstream.api.routing.GuardedRoute"
            )

    async def __call__(self, request: Request) -> None:
        self.verify(request)


def require(scope: Scope) -> Requires:
    """A route dependency for routes without a dataset in the path."""
    return Requires(scope)
