"""GET /v1/datasets/{ds}/events/{id} answered before the framework's stack.

Reads by id are the API's hottest call, and on a busy server the event loop is what saturates
first: the middleware layers (each wrapping `send`), routing, dependency resolution and
request/response objects cost more main-thread time than the lookup itself, which the store
coalesces across concurrent requests. The app (api/app.py) hands every request here first; the
plain case — a declared dataset, an authorised key, no query string, no trace context to continue
— is answered straight from the ASGI scope with the same lookup, cache, error bodies, request id,
metrics and access log line as the route in api/query.py and the middlewares in api/app.py and
api/tracing.py. Any other request goes on to the framework, which owns the other answers; the
route stays in the OpenAPI document.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Scope, Send

from slipstream import logs, otel
from slipstream.api.auth import authorize
from slipstream.api.errors import INTERNAL_MESSAGE, ApiError, error_body
from slipstream.api.headers import SECURITY_HEADERS
from slipstream.api.query import encoded_event
from slipstream.api.tracing import REQUEST_ID, log_request, new_request_id, valid_request_id
from slipstream.runtime import Runtime

PREFIX = "/v1/datasets/"
TEMPLATE = "/v1/datasets/{ds}/events/{event_id}"
JSON = (b"content-type", b"application/json")
READ = frozenset({"read"})
REQUEST_ID_HEADER = REQUEST_ID.encode()
access_log = logging.getLogger("slipstream.access")
errors_log = logging.getLogger("slipstream.api")


class _Route:
    """What the access log and metrics read from scope["route"]: the template, never the path."""

    path = TEMPLATE


ROUTE = _Route()


class PointReads:
    def __init__(self, runtime: Runtime, api_keys: dict[str, frozenset[str]]) -> None:
        self.runtime = runtime
        self.api_keys = api_keys
        self.datasets = frozenset(runtime.catalog.names)

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Answer the request when it is a plain read by id; False leaves it to the framework."""
        target = self._target(scope)
        if target is None:
            return False
        started = time.perf_counter()
        dataset_name, event_id, request_id = target
        dataset = self.runtime.catalog.get(dataset_name)
        assert dataset is not None  # _target only matches declared datasets
        scope["route"] = ROUTE
        scope["path_params"] = {"ds": dataset_name, "event_id": event_id}
        headers = [JSON, (REQUEST_ID_HEADER, request_id.encode()), *SECURITY_HEADERS]
        try:
            body = await encoded_event(self.runtime, dataset, event_id)
            status = 200
        except ApiError as exc:
            body = error_body(exc.status, exc.code, exc.message, exc.details)
            status = exc.status
            headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        except Exception:  # as the app's handler for the unexpected answers it
            token = logs.request_id.set(request_id)
            try:
                errors_log.exception("unhandled error on GET %s", scope["path"])
            finally:
                logs.request_id.reset(token)
            body = error_body(500, "internal", INTERNAL_MESSAGE)
            status = 500
        headers.append((b"content-length", str(len(body)).encode()))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:  # counted and logged even when the client has gone
            self.runtime.metrics.observe_request(
                TEMPLATE, "GET", status, dataset_name, time.perf_counter() - started
            )
            if access_log.isEnabledFor(logging.INFO):
                token = logs.request_id.set(request_id)
                try:
                    log_request(scope, "GET", TEMPLATE, status, started)
                finally:
                    logs.request_id.reset(token)
        return True

    def _target(self, scope: Scope) -> tuple[str, str, str] | None:
        """(dataset, event id, request id) of a plain authorised read by id, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        parts = path[len(PREFIX) :].split("/", 2)  # the id may hold "/" itself
        if len(parts) != 3 or parts[1] != "events" or not parts[2]:
            return None
        if parts[0] not in self.datasets or otel.enabled():
            return None
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = request_id or valid_request_id(value.decode("latin-1"))
            elif name == b"traceparent":
                return None  # a trace to continue: the framework's stack carries it
        try:
            # The framework's routes decide with the same function (api/routing.py); a request
            # it refuses goes on to the framework, which gives the refusal its answer.
            authorize(scope["headers"], self.api_keys, READ)
        except ApiError:
            return None
        return parts[0], parts[2], request_id or new_request_id()
