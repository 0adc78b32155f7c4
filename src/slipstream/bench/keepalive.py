"""A lean HTTP/1.1 GET client for the read workloads: keep-alive connections, one request in
flight on each, responses parsed by httptools (the parser uvicorn uses).

Why not aiohttp, which the ingest workload uses: a general client spends ~150 µs of CPU per
request on its own machinery. On a 2-core machine that shares its cores with the server being
measured, the load generator then takes two fifths of the machine and its own queueing shows up
in the latencies it records. This one only frames a GET and waits for the end of the message,
so the figures say more about the server and less about the client.
"""

from __future__ import annotations

import asyncio
from typing import cast
from urllib.parse import urlsplit

import httptools


class ConnectionLost(Exception):
    """The server closed the connection or sent something that is not an HTTP response."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiting: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"malformed response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:  # httptools callback
        if not self.parser.should_keep_alive():  # `connection: close`: the next one reconnects
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionLost(f"connection closed by the server ({exc or 'EOF'})"))

    def _fail(self, exc: Exception) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(exc)


class KeepAliveClient:
    """One connection to `url`'s host; `get(path)` answers the status code once the whole
    response has arrived. Reconnects after the server closes the connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the read load speaks plain http only, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._host_header = parts.netloc.encode()
        self._timeout = timeout
        self._connection: _Connection | None = None

    async def get(self, path: str) -> int:
        """The status code; ConnectionLost, OSError or TimeoutError (after `timeout` s)."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[int] = loop.create_future()
        connection.waiting = waiting
        assert connection.transport is not None
        connection.transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), self._host_header)
        )
        # A timer rather than asyncio.wait_for: it costs a fraction of a task per request.
        timer = loop.call_later(self._timeout, self._expire, waiting)
        try:
            return await waiting
        finally:
            timer.cancel()

    def _expire(self, waiting: asyncio.Future[int]) -> None:
        if not waiting.done():
            waiting.set_exception(TimeoutError(f"no full response within {self._timeout:g} s"))
            self.close()  # what arrives late on this connection would answer the next request

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        self._connection = connection
        return connection

    def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None
