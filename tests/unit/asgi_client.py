"""Calls an ASGI app with a body in chunks of our choosing, counting how many the app asked for.

TestClient hands the app a whole body at once; these tests need to see whether, and how far, the
app reads a body that is streamed in chunks (chunked transfer, no Content-Length).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    reads: int  # how many body chunks the app took

    def error(self) -> dict[str, Any]:
        """The JSON error body; fails unless the answer is one, with a request id."""
        assert self.headers["content-type"] == "application/json", self.headers
        assert self.headers.get("x-request-id"), self.headers
        body = orjson.loads(self.body)
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}
        error: dict[str, Any] = body["error"]
        return error


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    chunks: Sequence[bytes] = (),
    *,
    stall: bool = False,
) -> Answer:
    """Send `chunks` as the body; with `stall`, the client then sends nothing more, ever."""
    messages = list(chunks) or [b""]
    reads = 0
    started: Message = {}
    body = bytearray()

    async def receive() -> Message:
        nonlocal reads
        if reads < len(messages):
            reads += 1
            more = stall or reads < len(messages)
            return {"type": "http.request", "body": messages[reads - 1], "more_body": more}
        if stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = message
        else:
            body.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    await app(scope, receive, send)
    answer_headers = {k.decode(): v.decode() for k, v in started["headers"]}
    return Answer(started["status"], answer_headers, bytes(body), reads)
