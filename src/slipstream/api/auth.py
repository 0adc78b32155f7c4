"""API keys with scopes: `X-API-Key: KEY` or `Authorization: Bearer KEY` (X-API-Key wins).

With no keys configured the API is open (local use); the server says so loudly at start.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from slipstream.api.errors import ApiError
from slipstream.config import Scope


def presented_key(request: Request) -> str | None:
    # X-API-Key first: behind an identity-aware proxy (Cloud Run IAM, an OIDC gateway) the
    # Authorization header carries the platform's token, and the API key travels beside it.
    if (key := request.headers.get("x-api-key")) is not None:
        return key
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def scopes_for(key: str, keys: dict[str, frozenset[str]]) -> frozenset[str] | None:
    found: frozenset[str] | None = None
    for known, scopes in keys.items():
        # Compare against every key in constant time, so timing tells nothing about near misses.
        if hmac.compare_digest(known.encode(), key.encode()):
            found = scopes
    return found


def check_scope(request: Request, scope: Scope) -> None:
    """Raise 401/403 unless the request carries a key with `scope` (or the API is open)."""
    keys: dict[str, frozenset[str]] = request.app.state.api_keys
    if not keys:
        return
    key = presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scopes = scopes_for(key, keys)
    if scopes is None:
        raise ApiError(401, "the API key is not known", headers={"WWW-Authenticate": "Bearer"})
    if scope not in scopes:
        raise ApiError(
            403,
            f"this API key lacks the '{scope}' scope; it has: {', '.join(sorted(scopes))}",
        )


def require(scope: Scope) -> Callable[[Request], Awaitable[None]]:
    """A route dependency for routes without a dataset in the path."""

    async def check(request: Request) -> None:
        check_scope(request, scope)

    return check
