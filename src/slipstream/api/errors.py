"""Every error is JSON `{"error": {"code", "message", "details"}}` with a message a person can act on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from slipstream.api.encoding import dumps
from slipstream.errors import reason_of

log = logging.getLogger("slipstream.api")

CODES = {  # the `code` of each status's error body
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_events",
    431: "head_too_large",
    500: "internal",
    503: "unavailable",
}


RETRY_AFTER = "2"  # seconds a client waits before trying again after a 503


def code_for(status: int) -> str:
    return CODES.get(status, "error")


class ApiError(StarletteHTTPException):
    """An answer with the JSON error body. It is an HTTPException so that FastAPI lets it through
    unchanged when the body reader raises it while FastAPI parses a body (FastAPI turns any other
    exception from there into a generic 400)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status == 503:  # every 503 says when to come back, as the API description promises
            headers = {"Retry-After": RETRY_AFTER, **(headers or {})}
        super().__init__(status, message, headers)
        self.status = status
        self.code = code or code_for(status)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


def unavailable(what: str, exc: Exception) -> ApiError:
    """503 for a broker or store that cannot serve now, naming why; clients retry after a pause."""
    return ApiError(503, f"the {what} is unavailable ({reason_of(exc)}); retry shortly")


def error_body(status: int, code: str, message: str, details: Any = None) -> bytes:
    return dumps({"error": {"code": code, "message": message, "details": details}})


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = error_body(status, code, message, details)
    return Response(body, status, headers=headers, media_type="application/json")


INTERNAL_MESSAGE = "an internal error occurred; the server log has the details"


def error_answer(request: Request, exc: Exception) -> Response:
    """The answer to any exception raised while serving `request`: the one place errors are
    rendered, for the app's handlers and for the request pipeline (api/pipeline.py) alike."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, RequestValidationError):
        return _invalid_request(exc)
    if isinstance(exc, StarletteHTTPException):
        return _framework_refusal(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", INTERNAL_MESSAGE, None)


def _framework_refusal(request: Request, exc: StarletteHTTPException) -> Response:
    """The framework's own 404 and 405 (no such route, or method), said in the API's words."""
    message = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = (
            f"{request.method} is not allowed on {request.url.path}, only {', '.join(allowed)}; "
            "see /docs"
        )
    return error_response(
        exc.status_code, code_for(exc.status_code), message, None, headers or None
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette names only those of the
    first route whose path matches, and GET and POST of one path are two routes here."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.path_regex.fullmatch(path):
            methods |= set(route.methods)
    return sorted(methods)


def _invalid_request(exc: RequestValidationError) -> Response:
    problems = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:3])
    return error_response(400, "bad_request", f"invalid request: {summary}", problems)


async def _handler(request: Request, exc: Exception) -> Response:
    return error_answer(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    for kind in (ApiError, StarletteHTTPException, RequestValidationError, Exception):
        app.add_exception_handler(kind, _handler)
