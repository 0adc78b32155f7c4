"""A stream of hostile requests at a real `slipstream up` with keys, over raw sockets: bodies,
encodings, framing, credentials, heads, methods and paths. No answer is a 5xx, every 4xx carries
the JSON error body, the server's memory stays put, and the events stored before are unchanged."""

from __future__ import annotations

import contextlib
import gzip
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYS = "hostile-reader-1:read,hostile-ingest-1:ingest,hostile-admin-1:admin"
READ = b"X-API-Key: hostile-reader-1\r\n"
INGEST = b"X-API-Key: hostile-ingest-1\r\n"
ADMIN = b"X-API-Key: hostile-admin-1\r\n"
EVENTS = "/v1/datasets/flights/events"
MIB = 1024 * 1024


def raw(method: str, path: str, head: bytes = b"", body: bytes | None = None) -> bytes:
    """A request as bytes; Content-Length is added for a body unless `head` frames it."""
    framed = b"content-length:" in head.lower() or b"transfer-encoding:" in head.lower()
    length = b"" if body is None or framed else b"Content-Length: %d\r\n" % len(body)
    start = f"{method} {path} HTTP/1.1\r\nHost: hostile\r\n".encode()
    return start + head + length + b"\r\n" + (body or b"")


def event(n: int, **overrides: object) -> bytes:
    return orjson.dumps(flight_event(n, prefix="hostile", **overrides))


def post(body: bytes, head: bytes = b"") -> bytes:
    return raw("POST", EVENTS, INGEST + head, body)


NDJSON = b"Content-Type: application/x-ndjson\r\n"
GZIP = b"Content-Encoding: gzip\r\n"
VALID = event(1)

BODIES = {
    "empty": post(b""),
    "whitespace": post(b" \r\n\t "),
    "null": post(b"null"),
    "empty array": post(b"[]"),
    "empty object": post(b"{}"),
    "numbers": post(b"[1, 2, 3]"),
    "a string": post(b'"event"'),
    "deep nesting": post(b"[" * 100_000 + b"]" * 100_000),
    "huge integer": post(VALID.replace(b'"delay_minutes":1', b'"delay_minutes":' + b"9" * 5000)),
    "invalid utf-8": post(b'{"flight_id": "\xff\xfe\xfd"}'),
    "nul in a string": post(event(2, gate="B\u00001")),
    "utf-8 bom": post(b"\xef\xbb\xbf" + event(3)),
    "ndjson crlf and blanks": post(event(4) + b"\r\n\r\n" + event(5) + b"\r\n", NDJSON),
    "ndjson garbage lines": post(b"{oops\n" * 1000, NDJSON),
    "duplicate keys": post(VALID[:-1] + b', "status": "landed", "status": "nope"}'),
    "ten thousand fields": post(orjson.dumps({f"f{i}": i for i in range(10_000)})),
    "id of 100 KB": post(event(6, id="x" * 100_000)),
    "year 10000": post(event(7, event_time="10000-01-01T00:00:00Z")),
    "year 0": post(event(8, event_time="0000-01-01T00:00:00Z")),
    "nan": post(b'{"delay_minutes": NaN}'),
    "lone surrogate": post(b'{"gate": "\\ud800"}'),
    "17 MiB": post(b" " * (17 * MIB)),
    "declared 100 GiB": raw("POST", EVENTS, INGEST + b"Content-Length: 107374182400\r\n", b"{}"),
    "negative length": raw("POST", EVENTS, INGEST + b"Content-Length: -1\r\n", b"{}"),
    "length not a number": raw("POST", EVENTS, INGEST + b"Content-Length: abc\r\n", b"{}"),
    "two lengths": raw(
        "POST", EVENTS, INGEST + b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}"
    ),
    "chunked and length": raw(
        "POST",
        EVENTS,
        INGEST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"2\r\n{}\r\n0\r\n\r\n",
    ),
    "chunked": raw(
        "POST",
        EVENTS,
        INGEST + b"Transfer-Encoding: chunked\r\n",
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(event(9)), event(9)),
    ),
    "bad chunk size": raw(
        "POST", EVENTS, INGEST + b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"
    ),
    "transfer-encoding gzip": raw(
        "POST", EVENTS, INGEST + b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"
    ),
    "gzip members": post(
        gzip.compress(event(10) + b"\n") + gzip.compress(event(11)), NDJSON + GZIP
    ),
    "gzip then garbage": post(gzip.compress(event(12)) + b"garbage" * 1000, GZIP),
    "gzip truncated": post(gzip.compress(event(13))[:-5], GZIP),
    "gzip bomb": post(gzip.compress(b" " * (64 * MIB)), GZIP),
    "gzip of nothing": post(b"", GZIP),
    "gzip that is not": post(VALID, GZIP),
    "brotli": post(VALID, b"Content-Encoding: br\r\n"),
    "gzip twice": post(gzip.compress(gzip.compress(VALID)), b"Content-Encoding: gzip, gzip\r\n"),
    "x-gzip": post(gzip.compress(event(14)), b"Content-Encoding: x-gzip\r\n"),
    "identity": post(event(15), b"Content-Encoding: identity\r\n"),
    "text/plain": post(event(16), b"Content-Type: text/plain\r\n"),
    "multipart": post(b"--x\r\n\r\n--x--", b"Content-Type: multipart/form-data; boundary=x\r\n"),
    "form": post(b"a=1&b=2", b"Content-Type: application/x-www-form-urlencoded\r\n"),
    "ndjson holding an array": post(b"[" + VALID + b"]", NDJSON),
    "expect 100-continue": post(event(17), b"Expect: 100-continue\r\n"),
    "unknown dataset": raw("POST", "/v1/datasets/trains/events", INGEST, VALID),
    "read key ingesting": raw("POST", EVENTS, READ, VALID),
}
CREDENTIALS = {
    "no key": b"",
    "unknown key": b"X-API-Key: nobody-at-all\r\n",
    "two authorizations": b"Authorization: Bearer hostile-reader-1\r\nAuthorization: Bearer b-2\r\n",
    "two keys": READ + b"X-API-Key: hostile-ingest-1\r\n",
    "empty key": b"X-API-Key: \r\n",
    "bearer without token": b"Authorization: Bearer\r\n",
    "bearer spaced": b"Authorization: bearer    hostile-reader-1   \r\n",
    "basic": b"Authorization: Basic aG9zdGlsZTpzZWNyZXQ=\r\n",
    "8 KiB key": b"X-API-Key: " + b"k" * 8192 + b"\r\n",
    "nul in key": b"X-API-Key: hostile\x00reader\r\n",
    "latin-1 key": b"X-API-Key: hostile-r\xe9ader-1\r\n",
    "long request id": READ + b"X-Request-ID: " + b"r" * 10_000 + b"\r\n",
    "cr in request id": READ + b"X-Request-ID: a\rb\r\n",
    "bad traceparent": READ + b"traceparent: 00-zz-zz-zz\r\n",
    "500 headers": READ + b"".join(b"X-H%d: v\r\n" % i for i in range(500)),
    "20 KiB cookie": READ + b"Cookie: " + b"c=" * 10_000 + b"\r\n",
    "head over the limit": READ + b"X-Big: " + b"b" * 40_000 + b"\r\n",
    "obs-fold": READ + b"X-Folded: a\r\n b\r\n",
    "space in a name": READ + b"X Bad: v\r\n",
    "key and two bearers": READ + b"Authorization: Bearer a-1\r\nAuthorization: Bearer b-2\r\n",
}
LINES = {
    "no host": b"GET /v1/datasets HTTP/1.1\r\n" + READ + b"\r\n",
    "http/1.0": b"GET /v1/datasets HTTP/1.0\r\n" + READ + b"\r\n",
    "http/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http/9.9": b"GET /v1/datasets HTTP/9.9\r\n\r\n",
    "lowercase method": b"get /v1/datasets HTTP/1.1\r\nHost: h\r\n\r\n",
    "unknown method": b"FOO /v1/datasets HTTP/1.1\r\nHost: h\r\n\r\n",
    "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute form": b"GET http://elsewhere/v1/datasets HTTP/1.1\r\nHost: h\r\n" + READ + b"\r\n",
    "connect": b"CONNECT elsewhere:443 HTTP/1.1\r\nHost: elsewhere:443\r\n\r\n",
}
METHODS = {
    f"{method} {path}": raw(method, path, READ)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
    for path in ("/v1/datasets", EVENTS, "/healthz")
}
PATHS = {
    "dot segments": raw("GET", "/v1/datasets/../../etc/passwd", READ),
    "nul in id": raw("GET", EVENTS + "/%00", READ),
    "bytes in id": raw("GET", EVENTS + "/%ff%fe", READ),
    "docs asset walk": raw("GET", "/docs/assets/..%2f..%2fpyproject.toml"),
    "status asset walk": raw("GET", "/status/assets/%2e%2e%2fstatus.html"),
    "long path": raw("GET", "/v1/" + "p" * 30_000, READ),
    "double slashes": raw("GET", "//v1//datasets", READ),
    "huge limit": raw("GET", EVENTS + "?limit=99999999999999999999999", READ),
    "ten thousand parameters": raw(
        "GET", EVENTS + "?" + "&".join(f"p{i}=1" for i in range(3000)), READ
    ),
    "bad accept": raw("GET", EVENTS, READ + b"Accept: \x7f/\x7f\r\n"),
    "bad accept-encoding": raw("GET", "/v1/datasets", READ + b"Accept-Encoding: gzip;q=abc\r\n"),
}
REPLAYS = {
    "anonymous replay of 100 MiB": raw(
        "POST", EVENTS.replace("events", "quarantine/replay"), b"Content-Length: 104857600\r\n"
    ),
    "replay junk": raw("POST", "/v1/datasets/flights/quarantine/replay", ADMIN, b"{junk"),
    "replay ids not a list": raw(
        "POST", "/v1/datasets/flights/quarantine/replay", ADMIN, b'{"ids": 5}'
    ),
    "replay too many ids": raw(
        "POST",
        "/v1/datasets/flights/quarantine/replay",
        ADMIN + b"Content-Type: application/json\r\n",
        orjson.dumps({"ids": [str(i) for i in range(10_001)]}),
    ),
    "replay gzip": raw(
        "POST",
        "/v1/datasets/flights/quarantine/replay",
        ADMIN + GZIP + b"Content-Type: application/json\r\n",
        gzip.compress(b'{"ids": ["nothing"]}'),
    ),
    "replay gzip garbage": raw(
        "POST",
        "/v1/datasets/flights/deadletter/replay",
        ADMIN + GZIP + b"Content-Type: application/json\r\n",
        gzip.compress(b"{}") + b"\x00garbage",
    ),
    "dead letter ids not strings": raw(
        "POST",
        "/v1/datasets/flights/deadletter/replay",
        ADMIN + b"Content-Type: application/json\r\n",
        b'{"ids": [{"a": 1}]}',
    ),
    "reader replaying": raw("POST", "/v1/datasets/flights/deadletter/replay", READ, b"{}"),
    "pubsub junk": raw("POST", "/push/pubsub/flights", b"", b"junk"),
    "pubsub bad base64": raw(
        "POST", "/push/pubsub/flights", b"", b'{"message": {"data": "!!", "messageId": "1"}}'
    ),
    "pubsub unknown dataset": raw("POST", "/push/pubsub/trains", b"", b"{}"),
    "sns junk": raw("POST", "/push/sns/flights", b"x-amz-sns-message-type: Notification\r\n", b"{"),
    "sns gzip garbage": raw("POST", "/push/sns/flights", GZIP, gzip.compress(b"{}") + b"more"),
    "sns raw delivery": raw("POST", "/push/sns/flights", b"x-amz-sns-rawdelivery: true\r\n", b"{}"),
}
CASES = {
    **BODIES,
    **{
        f"GET /v1/datasets, {name}": raw("GET", "/v1/datasets", head)
        for name, head in CREDENTIALS.items()
    },
    **LINES,
    **METHODS,
    **PATHS,
    **REPLAYS,
}


def exchange(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """Send one request; (status, head, body) of the answer, status 0 when none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        with contextlib.suppress(OSError):  # a server that hung up early still answered first
            sock.sendall(request)
        data = b""
        try:
            while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")[1:])
                    if k.lower() == b"content-length"
                ),
                0,
            )
            while len(body) < length and (chunk := sock.recv(65536)):
                body += chunk
        except OSError:
            head, body = data, b""
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else 0
    return status, head, body


@pytest.fixture
def hostile_target(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"SLIPSTREAM_API_KEYS": KEYS, "SLIPSTREAM_BODY_TIMEOUT": "1"}
    process = ServerProcess(tmp_path, env=env).start()
    yield process
    process.kill()


def test_hostile_requests_get_4xx_json_and_change_nothing(hostile_target: ServerProcess) -> None:
    assert len(CASES) >= 100
    server = hostile_target
    assert server.process is not None
    before_ids = [str(flight_event(n, prefix="before")["id"]) for n in range(50)]
    with server.client(headers={"X-API-Key": "hostile-ingest-1"}) as client:
        events = [flight_event(n, prefix="before") for n in range(50)]
        assert client.post(EVENTS, json=events).status_code == 202
    with server.client(headers={"X-API-Key": "hostile-reader-1"}) as reader:
        wait_until(
            lambda: all(reader.get(f"{EVENTS}/{i}").status_code == 200 for i in before_ids[-3:]),
            what="the events stored before",
        )
        stored = {i: reader.get(f"{EVENTS}/{i}").content for i in before_ids}
        rss = psutil.Process(server.process.pid).memory_info().rss

        answers = {name: exchange(server.port, request) for name, request in CASES.items()}
        # A body that stops arriving (the server waits SLIPSTREAM_BODY_TIMEOUT = 1 s).
        answers["stalled body"] = exchange(
            server.port, raw("POST", EVENTS, INGEST + b"Content-Length: 100\r\n", b'{"id":')
        )

        bad = {n: (s, b[:200]) for n, (s, _, b) in answers.items() if s >= 500}
        assert bad == {}, bad
        for name, (status, head, body) in answers.items():
            if 400 <= status < 500:
                assert b"content-type: application/json" in head.lower(), name
                error = orjson.loads(body)["error"]
                assert set(error) == {"code", "message", "details"}, name
                assert error["message"], name
        assert answers["stalled body"][0] == 408
        assert answers["gzip members"][0] == 202
        assert answers["anonymous replay of 100 MiB"][0] == 401
        assert psutil.Process(server.process.pid).memory_info().rss - rss < 100 * MIB
        assert {i: reader.get(f"{EVENTS}/{i}").content for i in before_ids} == stored
