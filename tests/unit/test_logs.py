"""Log lines, request ids and the request context they carry."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import logs
from slipstream.api.app import create_app
from slipstream.api.pipeline import RequestPipeline
from slipstream.api.tracing import message_attributes, new_request_id, valid_request_id
from slipstream.config import Settings
from slipstream.metrics import Metrics
from slipstream.otel import parse_traceparent
from slipstream.runtime import Runtime
from tests.helpers import flight_event, log_lines

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("slipstream.test").makeRecord(
        "slipstream.test", logging.INFO, __file__, 1, message, args or ("world",), None
    )
    made.__dict__.update(extra)
    return made


def test_json_line_has_the_standard_fields_and_the_extra_ones() -> None:
    text = logs.JsonFormatter().format(record(dataset="flights", written=3, ids=["a", "b"]))

    assert "\n" not in text
    line = orjson.loads(text)
    assert RFC3339_UTC.fullmatch(line.pop("ts"))
    assert line == {
        "level": "info",
        "logger": "slipstream.test",
        "message": "hello world",
        "dataset": "flights",
        "written": 3,
        "ids": ["a", "b"],
    }


def test_json_line_carries_the_context_ids_and_explicit_fields_win() -> None:
    rid = logs.request_id.set("req-1")
    tid = logs.trace_id.set(TRACE)
    try:
        plain = orjson.loads(logs.JsonFormatter().format(record()))
        explicit = orjson.loads(logs.JsonFormatter().format(record(request_id="req-2")))
    finally:
        logs.request_id.reset(rid)
        logs.trace_id.reset(tid)

    assert (plain["request_id"], plain["trace_id"]) == ("req-1", TRACE)
    assert explicit["request_id"] == "req-2"
    assert "request_id" not in orjson.loads(logs.JsonFormatter().format(record()))


def test_a_field_json_cannot_hold_is_written_as_text() -> None:
    line = orjson.loads(logs.JsonFormatter().format(record(big=2**70, small=3, flag=True)))

    assert (line["big"], line["small"], line["flag"]) == (str(2**70), 3, True)


def test_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        failed = record()
        failed.exc_info = sys.exc_info()

    text = logs.JsonFormatter().format(failed)

    assert "\n" not in text
    assert "ValueError: bad\nvalue" in orjson.loads(text)["exception"]


def test_text_line_appends_fields_as_key_value() -> None:
    text = logs.TextFormatter().format(record(dataset="flights", reason="two words", ids=[1, 2]))

    assert text.endswith("slipstream.test: hello world dataset=flights reason='two words' ids=1,2")


@pytest.mark.parametrize(
    "value",
    ["test-0f8c1d", "a", "x" * 128, "0190f3c4-7a1b-7cde-8f00-123456789abc", "b64+/=:@._"],
)
def test_plain_request_ids_are_kept(value: str) -> None:
    assert valid_request_id(value) == value


@pytest.mark.parametrize(
    "value", [None, "", "x" * 129, "has space", 'quote"d', "new\nline", "tab\t", "é", "a;b"]
)
def test_unsafe_request_ids_are_refused(value: str | None) -> None:
    assert valid_request_id(value) is None


def test_generated_request_ids_are_valid_and_distinct() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(valid_request_id(i) for i in ids)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TRACEPARENT, (TRACE, "00f067aa0ba902b7")),
        (f" {TRACEPARENT} ", (TRACE, "00f067aa0ba902b7")),
        (None, None),
        ("", None),
        (TRACEPARENT.upper(), None),  # the spec allows lower case hex only
        (f"ff-{TRACE}-00f067aa0ba902b7-01", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE}-00f067aa0ba902b7", None),
    ],
)
def test_traceparent_parsing(value: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_traceparent(value) == expected


async def test_context_ids_stay_with_their_own_task() -> None:
    both_set = asyncio.Barrier(2)

    async def handle(request_id: str) -> str | None:
        logs.request_id.set(request_id)
        await both_set.wait()  # the other task has set its own id by now
        return logs.request_id.get()

    first, second = await asyncio.gather(
        asyncio.create_task(handle("one")), asyncio.create_task(handle("two"))
    )

    assert (first, second) == ("one", "two")
    assert logs.request_id.get() is None


async def test_concurrent_requests_each_see_their_own_id(captured: io.StringIO) -> None:
    both_in = asyncio.Barrier(2)

    async def echo(request: Request) -> PlainTextResponse:
        await both_in.wait()  # both requests are in flight at once
        logging.getLogger("slipstream.test").info("inside")
        return PlainTextResponse(f"{logs.request_id.get()} {message_attributes()['request_id']}")

    app = pipeline(Starlette(routes=[Route("/v1/datasets/{ds}/echo", echo)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(
            client.get("/v1/datasets/one/echo", headers={"X-Request-ID": "req-one"}),
            client.get("/v1/datasets/two/echo", headers={"X-Request-ID": "req-two"}),
        )

    assert [a.text for a in answers] == ["req-one req-one", "req-two req-two"]
    assert [a.headers["x-request-id"] for a in answers] == ["req-one", "req-two"]
    inside = sorted(
        str(line["request_id"]) for line in log_lines(captured) if line["message"] == "inside"
    )
    assert inside == ["req-one", "req-two"]
    requests = {
        line["request_id"]: line
        for line in log_lines(captured)
        if line["logger"] == "slipstream.access"
    }
    assert set(requests) == {"req-one", "req-two"}
    line = requests["req-one"]
    assert line["message"] == "GET /v1/datasets/{ds}/echo 200"
    assert (line["method"], line["route"], line["status"], line["dataset"]) == (
        "GET",
        "/v1/datasets/{ds}/echo",
        200,
        "one",
    )
    assert isinstance(line["duration_ms"], float)


async def test_an_unhandled_error_is_answered_and_logged_with_the_request_id(
    captured: io.StringIO,
) -> None:
    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    metrics = Metrics()
    app = pipeline(Router(routes=[Route("/boom", boom)]), metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/boom", headers={"X-Request-ID": "req-boom"})

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal"
    assert answer.headers["x-request-id"] == "req-boom"
    assert answer.headers["x-content-type-options"] == "nosniff"
    by_logger = {line["logger"]: line for line in log_lines(captured)}
    assert by_logger["slipstream.access"]["status"] == 500
    assert by_logger["slipstream.api"]["request_id"] == "req-boom"
    assert "RuntimeError: boom" in str(by_logger["slipstream.api"]["exception"])
    counted = metrics.registry.get_sample_value(
        "slipstream_http_requests_total",
        {"route": "/boom", "method": "GET", "code": "500", "dataset": ""},
    )
    assert counted == 1


async def test_an_error_after_the_answer_began_is_logged_with_the_request_id(
    captured: io.StringIO,
) -> None:
    async def halfway(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        await pipeline(halfway)(
            {"type": "http", "method": "GET", "path": "/x", "headers": []},
            _no_body,
            _discard,
        )
    by_logger = {line["logger"]: line for line in log_lines(captured)}
    assert "error after the answer began on GET /x" in str(by_logger["slipstream.api"]["message"])
    assert by_logger["slipstream.api"]["request_id"] == by_logger["slipstream.access"]["request_id"]


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


def pipeline(app: ASGIApp, metrics: Metrics | None = None) -> RequestPipeline:
    return RequestPipeline(app, metrics=metrics or Metrics(), datasets=frozenset({"one"}))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    )
    with TestClient(create_app(Runtime(settings, with_worker=False))) as test_client:
        yield test_client


def test_the_api_echoes_a_plain_request_id_and_replaces_an_unsafe_one(client: TestClient) -> None:
    mine = f"test-{uuid.uuid4()}"
    kept = client.get("/healthz", headers={"X-Request-ID": mine})
    replaced = client.get("/healthz", headers={"X-Request-ID": "two words"})
    missing = client.post("/v1/datasets/trains/events", json=flight_event(1))  # a 404 too

    assert kept.headers["x-request-id"] == mine
    assert valid_request_id(replaced.headers["x-request-id"])
    assert replaced.headers["x-request-id"] != "two words"
    assert missing.status_code == 404
    assert valid_request_id(missing.headers["x-request-id"])


def test_ingested_messages_carry_the_request_id_and_traceparent(
    client: TestClient, captured: io.StringIO
) -> None:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    answer = client.post(
        "/v1/datasets/flights/events",
        json=[flight_event(1), flight_event(2)],
        headers={"X-Request-ID": "req-ingest", "traceparent": TRACEPARENT},
    )
    assert answer.status_code == 202

    deliveries = client.portal.call(runtime.broker.pull, "flights", 10, 5.0)  # type: ignore[union-attr]

    # The embedded broker takes the request's two events as one bundle (bundles.py).
    assert [d.attributes for d in deliveries] == [
        {
            "dataset": "flights",
            "request_id": "req-ingest",
            "traceparent": TRACEPARENT,
            "bundle": "2",
        }
    ]
    (line,) = [line for line in log_lines(captured) if line["logger"] == "slipstream.access"]
    assert (line["request_id"], line["trace_id"], line["status"]) == ("req-ingest", TRACE, 202)


def test_configure_logging_writes_json_lines_or_text(tmp_path: Path) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    try:
        logs.configure_logging(Settings(_env_file=None, log_format="json"), stream)
        logs.configure_logging(Settings(_env_file=None, log_format="json"), stream)
        logging.getLogger("uvicorn.error").info("started", extra={"port": 1})
        logs.configure_logging(Settings(_env_file=None, log_format="text"), stream)
        logging.getLogger("uvicorn.error").info("stopped")
    finally:
        for handler in [h for h in root.handlers if h.get_name() == "slipstream"]:
            root.removeHandler(handler)
        root.setLevel(level)

    first, second = stream.getvalue().splitlines()  # configured twice, still one handler
    assert orjson.loads(first)["message"] == "started"
    assert orjson.loads(first)["port"] == 1
    assert second.endswith("INFO uvicorn.error: stopped")


def test_auto_format_is_text_on_a_terminal_and_json_elsewhere() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert logs.resolve_format("auto", terminal) == "text"
    os.close(leader)
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("text", io.StringIO()) == "text"
