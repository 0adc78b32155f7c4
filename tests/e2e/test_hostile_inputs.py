"""Hostile values, where tests/e2e/test_hostile_request_path.py sends hostile framing: event
contents, query parameters, cursors (forged, altered, carried to other queries), replay bodies and
push envelopes, against a real server with keys. Whatever arrives, the answer is a 2xx or a 4xx
with the JSON error body, never a 5xx; the server's memory stays put; the events stored before
are unchanged; and an event the server accepted is stored, not lost."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import psutil
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READ, INGEST, ADMIN = "values-reader-1", "values-producer-1", "values-operator-1"
KEYS = f"{READ}:read,{INGEST}:ingest,{ADMIN}:admin+read"
EVENTS = "/v1/datasets/flights/events"
SEEDED = 30
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    key: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"


def _event(n: int, **overrides: object) -> dict[str, object]:
    return flight_event(n, prefix="values", **overrides)


def _post(name: str, body: object) -> Case:
    # The standard library's encoder: orjson refuses the integers past 64 bits sent here.
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return Case(f"event: {name}", "POST", EVENTS, INGEST, data)


def _b64(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


def event_cases() -> list[Case]:
    """Event contents a store cannot hold or a validator might miss; HTTP framing aside."""
    unknown = {f"u{i}": i for i in range(1000)}
    return [
        _post("nul in a declared field", _event(1, gate="B\x002")),
        _post("nul in an unknown field", {**_event(2), "note": "a\x00b"}),
        _post("nul in an unknown key", {**_event(3), "k\x00": 1}),
        _post("nul in the id", _event(4, id="a\x00b")),
        _post("nul deep in json", {**_event(5), "nested": {"a": [{"b": "\x00"}]}}),
        _post("time past 9999 in utc", _event(6, event_time="9999-12-31T23:59:59-14:00")),
        _post("time before year 1 in utc", _event(7, event_time="0001-01-01T00:00:00+14:00")),
        _post("time without a zone", _event(8, event_time="2026-11-24T10:00:00")),
        _post("time as a number", _event(9, event_time=1795000000)),
        _post("time garbage", _event(10, event_time="yesterday")),
        _post("int beyond int64", _event(11, delay_minutes=2**70)),
        _post("int below int64", _event(12, delay_minutes=-(2**70))),
        _post("float for an int", _event(13, delay_minutes=1.5)),
        _post("string for an int", _event(14, delay_minutes="5")),
        _post("bool for an int", _event(15, delay_minutes=True)),
        _post("huge integer in an unknown field", {**_event(16), "big": 10**400}),
        _post("huge float literal", b'{"id": "values-f", "delay_minutes": 1e400}'),
        _post("id is a number", _event(17, id=12345)),
        _post("id is empty", _event(18, id="")),
        _post("id is an object", _event(19, id={"a": 1})),
        _post("id of 100 KB", _event(20, id="x" * 100_000)),
        _post("id with path characters", _event(21, id="../../etc/passwd?x=1#y")),
        _post("id with unicode", _event(22, id="ñandú-😀")),
        _post("status not in the enum", _event(23, status="teleported")),
        _post("status of another case", _event(24, status="LANDED")),
        _post("thousand unknown fields", {**_event(25), **unknown}),
        _post("unknown field of 1 MB", {**_event(26), "blob": "z" * MIB}),
        _post("field name of 100 KB", {**_event(27), "n" * 100_000: 1}),
        _post("json nested 300 deep", {**_event(28), "deep": _nested(300)}),
        _post("array of 20000 tiny events", [{"flight_id": "x"}] * 20_000),
        _post("array mixing good and bad", [_event(29), 5, None, "x", _event(30, status="?")]),
        _post("reserved column names", {**_event(31), "extra": 1, "_received_at": "x"}),
    ]


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def parameter_cases() -> list[Case]:
    lists = [
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=99999999999999999999999",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=10&limit=20",
        "since=yesterday",
        "since=9999-12-31T23:59:59-14:00",
        "until=0001-01-01T00:00:00%2B14:00",
        "since=2026-13-45T99:99:99Z",
        "since=" + "9" * 500,
        "since=2026-11-24T10:00:00Z&since=2026-11-25T10:00:00Z",
        "delay_minutes=99999999999999999999999",
        "delay_minutes=-99999999999999999999999",
        "delay_minutes=1e3",
        "delay_minutes=nan",
        "delay_minutes=inf",
        "delay_minutes=",
        "status=teleported",
        "status=landed&status=delayed",
        "unknown_field=1",
        "extra=1",
        "_received_at=2026-01-01",
        "gate=%00",
        "gate=%ED%A0%80",
        "gate=" + "g" * 10_000,
        "event_time=not-a-time",
        "event_time=9999-12-31T23:59:59-14:00",
    ]
    cases = [Case(f"list: {p[:48]}", "GET", f"{EVENTS}?{p}", READ) for p in lists]
    stats = [
        "bucket=week",
        "bucket=",
        "group_by=extra",
        "group_by=nope",
        "group_by=" + "x" * 5000,
        "since=9999-12-31T23:59:59-14:00",
        "status=delayed",
        "status=teleported",
        "delay_minutes=99999999999999999999999",
        "unknown=1",
        "bucket=hour&bucket=day",
    ]
    cases += [
        Case(f"stats: {p[:48]}", "GET", f"/v1/datasets/flights/stats?{p}", READ) for p in stats
    ]
    for kind in ("quarantine", "deadletter"):
        for p in ("limit=0", "limit=abc", "nope=1", "status=landed"):
            cases.append(Case(f"{kind}: {p}", "GET", f"/v1/datasets/flights/{kind}?{p}", READ))
    paths = [
        f"{EVENTS}/" + "x" * 10_000,
        f"{EVENTS}/%00",
        f"{EVENTS}/%ED%A0%80",
        f"{EVENTS}/" + quote("ñ€😀"),
        f"{EVENTS}/a?unexpected=1",
        "/v1/datasets/" + "d" * 5000 + "/events",
        "/v1/datasets/%00/events",
        "/v1/datasets?unexpected=1",
        "/v1/datasets/flights/stats/extra",
        "/status/series?window=-1",
        "/healthz?x=1",
        "/readyz?x=1",
        "/metrics?name[]=x",
    ]
    cases += [Case(f"path: {p[:60]}", "GET", p, READ) for p in paths]
    return cases


def cursor_cases(real: str) -> list[Case]:
    """Forged, altered and carried-over cursors, on every list that pages."""
    payload, _, mac = real.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    forgeries = {
        "garbage": "garbage",
        "empty mac": payload + ".",
        "no mac": payload,
        "altered payload": f"{flipped}.{mac}",
        "altered mac": f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "cut short": real[: len(real) // 2],
        "doubled": real + real,
        "unsigned old style": _b64(["events:x", "2026-11-24T10:00:00+00:00", "id"]),
        "list of nothing": _b64([]) + "." + mac,
        "10 KB": "A" * 10_000,
        "non-ascii": quote("ñ" * 20),
        "percent garbage": "%FF%FE",
    }
    cases = [
        Case(f"cursor: {name}", "GET", f"{EVENTS}?limit=5&cursor={value}", READ)
        for name, value in forgeries.items()
    ]
    cases.append(
        Case("cursor: other filters", "GET", f"{EVENTS}?status=landed&cursor={real}", READ)
    )
    cases.append(
        Case("cursor: other limit is fine", "GET", f"{EVENTS}?limit=7&cursor={real}", READ)
    )
    for kind in ("quarantine", "deadletter"):
        for name in ("garbage", "altered payload", "no mac"):
            path = f"/v1/datasets/flights/{kind}?cursor={forgeries[name]}"
            cases.append(Case(f"{kind} cursor: {name}", "GET", path, READ))
        cases.append(Case(f"{kind} cursor: an events cursor", "GET", f"{path}&cursor={real}", READ))
    return cases


def replay_cases() -> list[Case]:
    bodies = {
        "ids not a list": b'{"ids": "abc"}',
        "ids of numbers": b'{"ids": [1, 2, 3]}',
        "ids of objects": b'{"ids": [{"a": 1}]}',
        "ids non-integer": b'{"ids": ["not-a-number", "-1", "1e9", ""]}',
        "ids huge integer": b'{"ids": ["99999999999999999999999999"]}',
        "ids with nul": b'{"ids": ["a\\u0000b"]}',
        "ids with a lone surrogate": b'{"ids": ["\\ud800"]}',
        "ids repeated": orjson.dumps({"ids": ["1"] * 500}),
        "ids too many": orjson.dumps({"ids": [str(i) for i in range(10_001)]}),
        "unknown member": b'{"idz": []}',
        "not json": b"{{{",
        "json array": b"[]",
        "null": b"null",
    }
    cases = []
    for kind in ("quarantine", "deadletter"):
        path = f"/v1/datasets/flights/{kind}/replay"
        cases += [
            Case(f"{kind} replay: {name}", "POST", path, ADMIN, body)
            for name, body in bodies.items()
        ]
        cases.append(Case(f"{kind} replay: form body", "POST", path, ADMIN, b"ids=1", "text/plain"))
    return cases


def push_cases() -> list[Case]:
    def envelope(message: object) -> bytes:
        return orjson.dumps({"message": message, "subscription": "projects/p/subscriptions/s"})

    data = base64.b64encode(orjson.dumps(_event(40))).decode()
    pubsub = {
        "no message": b'{"subscription": "s"}',
        "message not an object": envelope("hello"),
        "no message id": envelope({"data": data}),
        "message id not a string": envelope({"data": data, "messageId": 5}),
        "message id of 1 MB": envelope({"data": data, "messageId": "m" * MIB}),
        "data not base64": envelope({"data": "!!!", "messageId": "1"}),
        "data not a string": envelope({"data": 5, "messageId": "1"}),
        "data of invalid json": envelope(
            {"data": base64.b64encode(b"{{").decode(), "messageId": "2"}
        ),
        "attributes not an object": envelope({"data": data, "messageId": "3", "attributes": [1]}),
        "envelope an array": b"[]",
        "not json": b"<xml/>",
    }
    cases = [
        Case(f"pubsub push: {name}", "POST", "/push/pubsub/flights", None, body)
        for name, body in pubsub.items()
    ]
    cases.append(Case("pubsub push: with a read key", "POST", "/push/pubsub/flights", READ, b"{}"))
    notification = {
        "Type": "Notification",
        "MessageId": "1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:flights",
        "Message": orjson.dumps(_event(41)).decode(),
    }
    sns = {
        "unsigned": notification,
        "certificate elsewhere": {
            **notification,
            "SignatureVersion": "1",
            "Signature": "AAAA",
            "SigningCertURL": "https://evil.example/cert.pem",
        },
        "signature version 9": {**notification, "SignatureVersion": "9", "Signature": "x"},
        "topic not an arn": {**notification, "TopicArn": "nope"},
        "message not a string": {**notification, "Message": {"a": 1}},
        "subscribe url elsewhere": {
            **notification,
            "Type": "SubscriptionConfirmation",
            "SubscribeURL": "http://169.254.169.254/latest/meta-data",
        },
    }
    for name, message in sns.items():
        cases.append(
            Case(f"sns push: {name}", "POST", "/push/sns/flights", None, orjson.dumps(message))
        )
    return cases


def _send(server: ServerProcess, case: Case) -> httpx.Response:
    headers = {"content-type": case.content_type}
    if case.key is not None:
        headers["authorization"] = f"Bearer {case.key}"
    if case.path.startswith("/push/sns") and case.body:
        kind = orjson.loads(case.body).get("Type", "Notification")
        headers["x-amz-sns-message-type"] = kind
    # A raw path: httpx would otherwise normalise what the test means to send.
    url = httpx.URL(server.url).copy_with(raw_path=case.path.encode())
    return httpx.request(case.method, url, headers=headers, content=case.body, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("hostile-values")
    process = ServerProcess(workdir, env={"SLIPSTREAM_API_KEYS": KEYS}).start()
    yield process
    process.kill()


def _seed(server: ServerProcess) -> tuple[dict[str, bytes], str]:
    """The seeded events as stored, and a real cursor of the newest-first list."""
    events = [flight_event(n, prefix="seed") for n in range(SEEDED)]
    with server.client(headers={"authorization": f"Bearer {INGEST}"}) as client:
        assert client.post(EVENTS, json=events).status_code == 202
    with server.client(headers={"authorization": f"Bearer {READ}"}) as client:
        ids = [str(e["id"]) for e in events]
        wait_until(
            lambda: all(client.get(f"{EVENTS}/{i}").status_code == 200 for i in ids),
            what="the seeded events to be stored",
        )
        cursor = client.get(EVENTS, params={"limit": 5}).json()["next_cursor"]
        return {i: client.get(f"{EVENTS}/{i}").content for i in ids}, cursor


def test_hostile_values_get_clear_answers_and_change_nothing(server: ServerProcess) -> None:
    assert server.process is not None
    before, cursor = _seed(server)
    cases = [
        *event_cases(),
        *parameter_cases(),
        *cursor_cases(cursor),
        *replay_cases(),
        *push_cases(),
    ]
    assert len(cases) >= 100
    assert len({c.name for c in cases}) == len(cases)
    process = psutil.Process(server.process.pid)
    rss = process.memory_info().rss
    problems, accepted = [], []
    for case in cases:
        try:
            answer = _send(server, case)
        except httpx.HTTPError as exc:
            raise AssertionError(f"{case.name}: {exc!r}") from exc
        if answer.status_code >= 500:
            problems.append(f"{case.name}: {answer.status_code} {answer.text[:200]}")
        elif answer.status_code >= 400:
            try:
                error = answer.json()["error"]
                assert set(error) == {"code", "message", "details"}
                assert error["message"]
            except (ValueError, KeyError, TypeError, AssertionError):
                problems.append(f"{case.name}: {answer.status_code} without the JSON error body")
        elif case.path == EVENTS and case.method == "POST":
            accepted += answer.json()["ids"]
    assert not problems, "\n".join(problems)
    assert process.memory_info().rss - rss < 100 * MIB

    with server.client(headers={"authorization": f"Bearer {READ}"}) as client:
        assert {i: client.get(f"{EVENTS}/{i}").content for i in before} == before
        # What was accepted is stored: every id a 202 named can be read back.
        for event_id in accepted:
            path = f"{EVENTS}/{quote(event_id, safe='')}"

            def stored(path: str = path) -> bool:
                return bool(client.get(path).status_code == 200)

            wait_until(stored, what=f"accepted event {event_id[:40]!r} to be stored")
        assert client.get("/readyz").status_code == 200
