"""The read load's HTTP client and the reads job, against real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from slipstream.bench.keepalive import ConnectionLost, KeepAliveClient
from slipstream.bench.load import ReadJob, run_reads

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def response(status: int, body: bytes = b"{}", *, close: bool = False) -> bytes:
    headers = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    if close:
        headers += "connection: close\r\n"
    return headers.encode() + b"\r\n" + body


async def read_request(reader: asyncio.StreamReader) -> str | None:
    """The path of the next GET on the connection; None once the client has gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return head.split(b" ", 2)[1].decode()


class Server:
    """An HTTP server on a free port whose behaviour each test writes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def status_by_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: /ok → 200 with a body, anything else → 404; split over two writes."""
    while (path := await read_request(reader)) is not None:
        answer = response(200, b'{"id": "x"}' * 50) if path == "/ok" else response(404)
        middle = len(answer) // 2
        writer.write(answer[:middle])
        await writer.drain()
        writer.write(answer[middle:])
        await writer.drain()


@pytest.fixture
async def keep_alive_server() -> AsyncIterator[Server]:
    async with Server(status_by_path) as server:
        yield server


async def test_requests_share_one_connection_and_report_their_status(
    keep_alive_server: Server,
) -> None:
    client = KeepAliveClient(keep_alive_server.url)
    try:
        statuses = [await client.get(path) for path in ["/ok", "/missing", "/ok", "/ok"]]
    finally:
        client.close()
    assert statuses == [200, 404, 200, 200]
    assert keep_alive_server.connections == 1


async def test_a_connection_the_server_closes_is_opened_again() -> None:
    async def one_answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await read_request(reader) is not None:
            writer.write(response(200, close=True))
            await writer.drain()

    async with Server(one_answer_each) as server:
        client = KeepAliveClient(server.url)
        try:
            statuses = [await client.get("/ok") for _ in range(3)]
        finally:
            client.close()
    assert statuses == [200, 200, 200]
    assert server.connections == 3


async def test_a_connection_dropped_mid_request_is_an_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()

    async with Server(hang_up) as server:
        client = KeepAliveClient(server.url)
        with pytest.raises(ConnectionLost, match="closed by the server"):
            await client.get("/ok")
        client.close()


async def test_a_server_that_never_answers_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes

    async with Server(silent) as server:
        client = KeepAliveClient(server.url, timeout=0.2)
        with pytest.raises(TimeoutError, match=r"no full response within 0\.2 s"):
            await client.get("/ok")
        client.close()


async def test_a_refused_connection_is_an_os_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        client = KeepAliveClient(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectionRefusedError):
            await client.get("/ok")


def test_only_plain_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="plain http only"):
        KeepAliveClient("https://example.com")


def serve_in_thread(handler: Handler) -> tuple[str, Callable[[], None]]:
    """A Server on a loop of its own thread (run_reads runs its own loop); URL and stop()."""
    ready: list[str] = []
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop_event = asyncio.Event()

    async def main() -> None:
        async with Server(handler) as server:
            ready.append(server.url)
            started.set()
            await stop_event.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(stop_event.set)
        thread.join(10)
        loop.close()

    return ready[0], stop


def test_the_reads_job_counts_answers_errors_and_distinct_urls(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("ok\nok\nnot-there\n")

    async def by_id(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (path := await read_request(reader)) is not None:
            writer.write(response(200 if path.endswith("/ok") else 404))
            await writer.drain()

    url, stop = serve_in_thread(by_id)
    try:
        job = ReadJob(url, ["/events/{id}"], seconds=0.5, connections=4, ids_path=str(ids))
        result = run_reads(job)
    finally:
        stop()
    assert result.requests > 0
    assert result.requests == len(result.latencies) + result.errors
    assert result.errors > 0  # the missing id: 404s are errors, never latencies
    assert result.first_error == "HTTP 404"
    assert result.distinct == 2
    assert result.p50 is not None
    assert result.p99 is not None
