"""A real `slipstream up` against clients that hold on to it over raw sockets: heads that never
end, heads of 64 MiB, more connections than allowed, bytes that are not HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: slipstream\r\n\r\n"
MIB = 1024 * 1024


@pytest.fixture
def quick_to_close(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, env={"SLIPSTREAM_HEAD_TIMEOUT": "1"}).start()
    yield process
    process.kill()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def read_one(sock: socket.socket) -> bytes:
    """One answer on a kept-alive connection: its head and a body of Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def closed_by_server(sock: socket.socket, trickle: bytes) -> bool:
    """Send one more byte of a head, as a slow client would; True once the server has hung up."""
    try:
        if trickle:
            sock.sendall(trickle)
        sock.settimeout(0.05)
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except OSError:  # reset, or a broken pipe on the send
        return True


def json_error(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    assert lines[0].startswith(f"http/1.1 {status} "), lines[0]
    assert "content-type: application/json" in lines
    assert "x-content-type-options: nosniff" in lines
    error: dict[str, object] = orjson.loads(body)["error"]
    return error


def test_a_head_that_never_ends_is_closed(quick_to_close: ServerProcess) -> None:
    silent = connect(quick_to_close)  # connects and sends nothing
    trickling = connect(quick_to_close)
    trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: slipstream\r\nX-Slow: ")
    kept_alive = connect(quick_to_close)  # one whole request, then a next head that never ends
    kept_alive.sendall(HEALTHZ)
    assert read_one(kept_alive).startswith(b"HTTP/1.1 200")
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\n")
    for sock, trickle in ((silent, b""), (trickling, b"x"), (kept_alive, b"X")):

        def hung_up(s: socket.socket = sock, t: bytes = trickle) -> bool:
            return bool(closed_by_server(s, t))

        wait_until(hung_up, 30, 0.2, "the server to hang up")
        sock.close()
    # A client that is quick enough is still served.
    with connect(quick_to_close) as sock:
        sock.sendall(HEALTHZ)
        assert read_one(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("start", "filler"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: slipstream\r\nX-Big: ", b"a" * MIB),  # one long header
        (b"GET /healthz HTTP/1.1\r\nHost: slipstream\r\n", b"X-Many: v\r\n" * (MIB // 11)),
        (b"GET /healthz?q=", b"q" * MIB),  # a long request line
    ],
    ids=["long-header", "many-headers", "long-request-line"],
)
def test_a_head_of_64_mib_is_refused_without_memory_growth(
    quick_to_close: ServerProcess, start: bytes, filler: bytes
) -> None:
    assert quick_to_close.process is not None
    server = psutil.Process(quick_to_close.process.pid)
    with connect(quick_to_close) as sock:  # warm: the first request's allocations are not growth
        sock.sendall(HEALTHZ)
        read_one(sock)
    before = server.memory_info().rss
    sent = 0
    with connect(quick_to_close) as sock:
        try:
            sock.sendall(start)
            for _ in range(64):
                sock.sendall(filler)
                sent += len(filler)
        except OSError:
            pass  # the server hung up mid-way: what a refusal looks like to a sender
        answer = read_answer(sock)
    if answer:  # 431, unless the reset overtook it
        assert json_error(answer, 431)["code"] == "head_too_large"
    assert sent < 64 * len(filler), "the server took the whole 64 MiB head"
    assert server.memory_info().rss - before < 16 * MIB


def test_connections_past_the_limit_are_answered_503(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, env={"SLIPSTREAM_MAX_CONNECTIONS": "4"}).start()
    try:
        held = [connect(server) for _ in range(4)]

        def answer_of_one_more() -> bytes:
            with connect(server) as sock:
                sock.sendall(HEALTHZ)
                return read_answer(sock)

        answer = wait_until(
            lambda: (a := answer_of_one_more()).startswith(b"HTTP/1.1 503") and a,
            what="a 503 past 4 connections",
        )
        error = json_error(answer, 503)
        assert "limit of 4 connections" in str(error["message"])
        assert b"retry-after: 2" in answer.lower()
        for sock in held:
            sock.close()
        wait_until(
            lambda: answer_of_one_more().startswith(b"HTTP/1.1 200"), what="a 200 once they left"
        )
    finally:
        server.kill()


def test_bytes_that_are_not_http_get_a_json_400(quick_to_close: ServerProcess) -> None:
    with connect(quick_to_close) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n")
        assert json_error(read_answer(sock), 400)["code"] == "bad_request"
    # A WebSocket upgrade is a plain request here: the API has no WebSocket route.
    with connect(quick_to_close) as sock:
        sock.sendall(
            b"GET /v1/datasets HTTP/1.1\r\nHost: slipstream\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert read_one(sock).startswith(b"HTTP/1.1 200")
