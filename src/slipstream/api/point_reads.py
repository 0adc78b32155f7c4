"""GET /v1/datasets/{ds}/events/{id} on a short path past the framework.

Reads by id are the API's hottest call, and on a busy server the event loop is what saturates
first: routing, dependency resolution and request/response objects cost more main-thread time
than the lookup itself, which the store coalesces across concurrent requests. This middleware
answers the plain case — a declared dataset, an authorised key, no query string — straight from
the ASGI scope, with the same lookup, cache and error bodies as the route in api/query.py. Any
other request (a missing or wrong key, a query string, an unknown dataset) goes on to the
framework, which owns the error answers; the route stays in the OpenAPI document.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from slipstream.api.auth import scopes_for
from slipstream.api.errors import ApiError, error_body
from slipstream.api.query import encoded_event
from slipstream.runtime import Runtime

PREFIX = "/v1/datasets/"
TEMPLATE = "/v1/datasets/{ds}/events/{event_id}"
JSON_HEADERS = [(b"content-type", b"application/json")]


class _Route:
    """What RequestMetrics reads from scope["route"]: the template, never the raw path."""

    path = TEMPLATE


ROUTE = _Route()


class PointReads:
    def __init__(self, app: ASGIApp, runtime: Runtime, api_keys: dict[str, frozenset[str]]) -> None:
        self.app = app
        self.runtime = runtime
        self.api_keys = api_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        dataset_name, event_id = target
        dataset = self.runtime.catalog.get(dataset_name)
        assert dataset is not None  # _target only matches declared datasets
        scope["route"] = ROUTE
        scope["path_params"] = {"ds": dataset_name, "event_id": event_id}
        try:
            body = await encoded_event(self.runtime, dataset, event_id)
            status, headers = 200, JSON_HEADERS
        except ApiError as exc:
            body = error_body(exc.status, exc.code, exc.message, exc.details)
            status = exc.status
            headers = JSON_HEADERS + [
                (k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()
            ]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _target(self, scope: Scope) -> tuple[str, str] | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        parts = path[len(PREFIX) :].split("/")
        if len(parts) != 3 or parts[1] != "events" or not parts[2]:
            return None
        if parts[0] not in self.runtime.catalog.names or not self._authorised(scope):
            return None
        return parts[0], parts[2]

    def _authorised(self, scope: Scope) -> bool:
        if not self.api_keys:
            return True
        # The same precedence as auth.presented_key: X-API-Key, then a Bearer token.
        key: str | None = None
        bearer: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value.decode("latin-1")
                break
            if name == b"authorization" and bearer is None:
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    bearer = token.strip()
        key = key if key is not None else bearer
        if key is None:
            return False
        scopes = scopes_for(key, self.api_keys)
        return scopes is not None and "read" in scopes
