"""The one reader of request bodies: every route's handler receives its body through it.

It stands in for the ASGI `receive` of a route (api/routing.py puts it there, after the
request is authorised), so the ingest route, the push routes and the routes whose body FastAPI
parses read the same bytes under the same rules:

- one limit, `SLIPSTREAM_MAX_BODY_BYTES`, on the bytes as sent and again on the bytes after
  decompression (413), checked as they arrive, so no more than the limit is ever held;
- `Content-Encoding: gzip` inflated here, every member of it, anything else refused (415);
- a body that stops arriving for `SLIPSTREAM_BODY_TIMEOUT` seconds is abandoned (408);
- the bodies of all requests in hand together stay within `SLIPSTREAM_BODY_MEMORY_BYTES`: a
  request whose body would pass it is answered 503 with Retry-After, so many large bodies at
  once cannot take the server's memory (the per-request limit alone allows one per connection).

Nothing is read until the handler asks, so a route that needs no body never pays for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope

from slipstream.api.errors import ApiError
from slipstream.api.inflate import GzipError, GzipMembers

GZIP = frozenset({"gzip", "x-gzip"})  # RFC 9110 8.4.1.3: x-gzip is gzip


RETRY_AFTER = "2"


class BodyBudget:
    """Bytes of request bodies handed to handlers and not yet given back, across requests.

    Only the event loop's thread touches it, so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise ApiError(
                503,
                f"the server holds {self.held} bytes of request bodies, near its limit of "
                f"{self.limit} (SLIPSTREAM_BODY_MEMORY_BYTES); nothing of this request was "
                "accepted, retry after a pause",
                headers={"Retry-After": RETRY_AFTER},
            )
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    idle_timeout: float
    budget: BodyBudget


class BodyReader:
    def __init__(self, scope: Scope, receive: Receive, limits: BodyLimits) -> None:
        self._scope = scope
        self._upstream = receive
        self._limits = limits
        self._started = False
        self._done = False  # the whole body has been handed on
        self._last = False  # the client has sent its last body bytes
        self._sent = 0
        self._decoded = 0
        self._inflater: GzipMembers | None = None
        self._pieces: Iterator[bytes] = iter(())
        self._held = 0  # of the budget, for this request

    def close(self) -> None:
        """Give the body's bytes back to the budget: the handler is done with them."""
        self._limits.budget.give_back(self._held)
        self._held = 0

    async def receive(self) -> Message:
        if self._done:  # past the body only a disconnect can come
            return await self._upstream()
        if not self._started:
            self._start()
        while True:
            piece = self._next_piece()
            if piece is not None:
                return self._hand_on(piece, more=True)
            if self._last:
                self._finish()
                return _chunk(b"", more=False)
            message = await self._from_client()
            if message["type"] != "http.request":
                return message
            data: bytes = message.get("body", b"")
            self._sent += len(data)
            if self._sent > self._limits.max_bytes:
                raise _too_large(self._limits.max_bytes, "as sent")
            self._last = not message.get("more_body", False)
            if self._inflater is None:
                self._done = self._last
                return self._hand_on(data, more=not self._last)
            self._pieces = self._inflater.inflate(data)

    def _hand_on(self, data: bytes, *, more: bool) -> Message:
        self._limits.budget.take(len(data))
        self._held += len(data)
        return _chunk(data, more=more)

    def _start(self) -> None:
        self._started = True
        declared = _header(self._scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limits.max_bytes:
            raise _too_large(self._limits.max_bytes, "as declared by Content-Length")
        codings = [
            c.strip().lower()
            for value in _headers(self._scope, b"content-encoding")
            for c in value.split(",")
        ]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) == 1 and codings[0] in GZIP:
            self._inflater = GzipMembers()
        elif codings:
            raise ApiError(
                415,
                f"Content-Encoding {', '.join(codings)!r} is not supported; send gzip or no "
                "encoding",
            )

    def _next_piece(self) -> bytes | None:
        try:
            piece = next(self._pieces, None)
        except GzipError as exc:
            raise ApiError(400, str(exc)) from None
        if piece is not None:
            self._decoded += len(piece)
            if self._decoded > self._limits.max_bytes:
                raise _too_large(self._limits.max_bytes, "after decompression")
        return piece

    def _finish(self) -> None:
        self._done = True
        if self._inflater is not None:
            try:
                self._inflater.finish()
            except GzipError as exc:
                raise ApiError(400, str(exc)) from None

    async def _from_client(self) -> Message:
        timeout = self._limits.idle_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._upstream()
        except TimeoutError:
            raise ApiError(
                408,
                f"no body bytes arrived for {timeout:g} s, so the request was abandoned; send the "
                "body without pauses",
                headers={"Connection": "close"},
            ) from None


def _chunk(data: bytes, *, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


def _header(scope: Scope, name: bytes) -> str | None:
    values = _headers(scope, name)
    return values[0].strip() if values else None


def _too_large(limit: int, counted: str) -> ApiError:
    return ApiError(
        413,
        f"the body is over the limit of {limit} bytes ({counted}); split it into smaller batches",
        details={"limit_bytes": limit},
    )
