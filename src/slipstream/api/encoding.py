"""Response bodies: JSON through orjson, NDJSON and CSV for lists (cursors: api/cursors.py)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers=headers, media_type="application/json")


class EncodedJSON(Response):
    """200 with a JSON body encoded already (a read by id, often from the read cache).

    Its two headers are written directly: `Response.__init__` works them out from arguments
    (charset, extra headers) this answer never has, and it runs on every read.
    """

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:  # sets what Response.__call__ reads, nothing else
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


COMPRESS_FROM = 1024  # bytes; smaller bodies are not worth the CPU


def negotiated(
    request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """A response gzip-compressed when the client accepts it and the body is large enough.

    Done here for the routes that return large bodies, rather than by a middleware that would
    wrap every request, the small and frequent GET by id included.
    """
    if len(body) >= COMPRESS_FROM and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers = {**(headers or {}), "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(body, headers=headers, media_type=media_type)


def ndjson(items: Iterable[Any]) -> bytes:
    return b"".join(dumps(item) + b"\n" for item in items)


def to_csv(columns: Sequence[str], items: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([_csv_cell(item.get(c)) for c in columns])
    return out.getvalue().encode()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return dumps(value).decode().strip('"')
    if isinstance(value, dict | list):
        return dumps(value).decode()
    return value
