"""The HTTP/1.1 protocol `slipstream up` and `slipstream api` serve with: uvicorn's httptools
protocol, with bounds on what a client can make the server hold.

uvicorn (0.55) bounds neither the size of a request head under httptools (a 64 MiB head is
buffered whole) nor, under either of its protocols, the time a client takes to send one: its
keep-alive timer is cancelled by any byte, so a connection that trickles a head, or never starts
one, is kept for ever. This subclass adds, at the one place that sees every byte:

- a head size bound: bytes go to the parser only while the head is within `max_head_bytes`; a
  longer head is answered 431 and its connection closed, so no more than the bound is held;
- a head deadline: a client has `head_timeout` seconds to send a whole head, from connecting or
  from the first byte of a head on a kept-alive connection (an idle one is closed by uvicorn's
  keep-alive timeout), and as long again for the rest of a body it was answered before sending;
- a connection bound: past `max_connections` (or as many requests in progress) each request is
  answered 503 with Retry-After and its connection closed, as uvicorn's `limit_concurrency` does;
- the JSON error body on these answers and on the 400 for a request that does not parse;
- an answer's writes in one system call (api/transport.py).

Settings: `SLIPSTREAM_MAX_HEAD_BYTES`, `SLIPSTREAM_HEAD_TIMEOUT`, `SLIPSTREAM_MAX_CONNECTIONS`.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import Any, ClassVar, cast

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from slipstream.api.errors import code_for, error_body
from slipstream.api.headers import SECURITY_HEADERS
from slipstream.api.transport import CoalescingTransport
from slipstream.config import Settings

log = logging.getLogger("slipstream.api")
RETRY_AFTER = b"2"


def _error_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
    ]


def error_answer(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response with the JSON error body, for the protocol to write itself."""
    body = error_body(status, code_for(status), message)
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in _error_headers(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class BoundedHttpProtocol(HttpToolsProtocol):
    max_head_bytes: ClassVar[int] = Settings.model_fields["max_head_bytes"].default
    head_timeout: ClassVar[float] = Settings.model_fields["head_timeout"].default
    max_connections: ClassVar[int] = Settings.model_fields["max_connections"].default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self._head_open = True  # the next bytes belong to a request head
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # An answer's head and body leave in one system call (api/transport.py).
        self.transport = cast(asyncio.Transport, CoalescingTransport(transport, self.loop))
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data and not self.transport.is_closing():
            if not self._head_open:
                # Body bytes. Should a pipelined head start inside them, it is parsed without
                # being counted, but it is no longer than this one read.
                super().data_received(data)
                return
            room = self.max_head_bytes - self._head_bytes
            if room <= 0:
                self._refuse_head()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
        # A head begun but not finished. A whole head in one read, the usual case, arms nothing.
        if self._head_open and self._head_bytes and self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm_head_timer()
        self.app = self._over_capacity if self._busy() else self._app
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Answered before its body was all in (and no pipelined request started): the rest of
        # the body, drained, must not trickle in for ever either (uvicorn's keep-alive timer is
        # cancelled by every byte).
        if self.cycle.response_complete and not self._head_open and not self.transport.is_closing():
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "the request is not valid HTTP/1.1; check its request line and headers")

    def _refuse_head(self) -> None:
        self._refuse(
            431,
            f"the request head (request line and headers) is over the limit of "
            f"{self.max_head_bytes} bytes; send fewer or shorter headers",
        )

    def _refuse(self, status: int, message: str) -> None:
        if self.cycle is None or self.cycle.response_complete:  # never inside another answer
            self.transport.write(error_answer(status, message))
        self.transport.close()

    def _busy(self) -> bool:
        limit = self.max_connections
        return len(self.connections) > limit or len(self.tasks) >= limit

    async def _over_capacity(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("over the limit of %d connections: answered 503", self.max_connections)
        body = error_body(
            503,
            code_for(503),
            f"the server is at its limit of {self.max_connections} connections; retry after a "
            "pause",
        )
        headers = [*_error_headers(body), (b"retry-after", RETRY_AFTER)]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpProtocol]:
    """The protocol class with the bounds of `settings`."""

    class Configured(BoundedHttpProtocol):
        max_head_bytes = settings.max_head_bytes
        head_timeout = settings.head_timeout
        max_connections = settings.max_connections

    return Configured
