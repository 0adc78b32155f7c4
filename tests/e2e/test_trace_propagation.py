"""A request id and trace id travel from the HTTP request, through the broker, to the worker's
log line about the batch that stored the events — in one process and across processes."""

from __future__ import annotations

import asyncio
import gzip
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.contracts.backends import drop_nats_streams
from tests.e2e.harness import ServerProcess, WorkerProcess
from tests.helpers import flight_event, wait_until
from tests.services import port_open, service_missing

pytestmark = pytest.mark.e2e
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
JSON_LOGS = {"SLIPSTREAM_LOG_LEVEL": "info", "SLIPSTREAM_LOG_FORMAT": "json"}


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON log lines of a process's output (its start banner is plain text)."""
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def post_traced(client: httpx.Client, prefix: str) -> tuple[str, str, list[str]]:
    request_id = f"test-{uuid.uuid4()}"
    trace_id = uuid.uuid4().hex
    events = [flight_event(n, prefix=prefix) for n in range(3)]
    answer = client.post(
        "/v1/datasets/flights/events",
        json=events,
        headers={"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-request-id"] == request_id
    ids = [str(e["id"]) for e in events]

    def stored() -> bool:
        return all(client.get(f"/v1/datasets/flights/events/{e}").status_code == 200 for e in ids)

    wait_until(stored, what=f"events {ids} stored")
    return request_id, trace_id, ids


def assert_request_line(lines: list[dict[str, object]], request_id: str, trace_id: str) -> None:
    (line,) = [
        line
        for line in lines
        if line["logger"] == "slipstream.access" and line.get("request_id") == request_id
    ]
    assert line["trace_id"] == trace_id
    assert (line["method"], line["route"], line["status"], line["dataset"]) == (
        "POST",
        "/v1/datasets/{ds}/events",
        202,
        "flights",
    )
    assert isinstance(line["duration_ms"], float)
    assert isinstance(line["ts"], str)
    assert line["level"] == "info"


def batch_lines(log: Callable[[], str], request_id: str) -> list[dict[str, object]]:
    return [
        line
        for line in json_lines(log())
        if line["message"] == "batch written" and request_id in line["request_ids"]  # type: ignore[operator]
    ]


def assert_batches(lines: list[dict[str, object]], trace_id: str) -> None:
    assert sum(int(line["written"]) for line in lines) == 3  # type: ignore[call-overload]
    for line in lines:
        assert trace_id in line["trace_ids"]  # type: ignore[operator]
        assert (line["dataset"], line["quarantined"], line["duplicates"]) == ("flights", 0, 0)


def test_request_and_trace_ids_reach_the_worker_log_in_one_process(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, JSON_LOGS).start()
    try:
        with server.client() as client:
            request_id, trace_id, _ = post_traced(client, "one")
            quarantined = client.post(
                "/v1/datasets/flights/events",
                json={"id": "bad-1", "status": "teleported"},
                headers={"X-Request-ID": f"{request_id}-bad"},
            )
            assert quarantined.status_code == 422

        lines = wait_until(
            lambda: batch_lines(server.log, request_id), what=f"batch line naming {request_id}"
        )
        assert_batches(lines, trace_id)
        assert_request_line(json_lines(server.log()), request_id, trace_id)
        (bad,) = wait_until(
            lambda: [
                line
                for line in json_lines(server.log())
                if line["message"] == "event quarantined"
                and line.get("request_id") == f"{request_id}-bad"
            ],
            what="quarantine line",
        )
        assert bad["dataset"] == "flights"
        assert "teleported" in str(bad["reason"])
    finally:
        server.kill()


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: what a real collector would be sent, decoded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> list[Any]:
        with self.lock:
            return list(self.spans)


class _OtlpHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: not our server's log
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_worker_span_links_to_the_request_span_over_otlp(
    tmp_path: Path, collector: Collector
) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    env = {
        **JSON_LOGS,
        "SLIPSTREAM_OTEL_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports
        "OTEL_SERVICE_NAME": "slipstream-e2e",
    }
    server = ServerProcess(tmp_path, env).start()
    try:
        with server.client() as client:
            request_id, trace_id, _ = post_traced(client, "otel")
        batches = wait_until(
            lambda: [
                s
                for s in collector.received()
                if s.name == "process batch" and any(k.trace_id.hex() == trace_id for k in s.links)
            ],
            what="a process batch span linked to the request's trace",
        )
    finally:
        server.stop()

    in_trace = [s for s in collector.received() if s.trace_id.hex() == trace_id]
    (request,) = [s for s in in_trace if s.kind == Span.SPAN_KIND_SERVER]
    assert request.parent_span_id.hex() == "00f067aa0ba902b7"  # the caller's span
    (link,) = [k for b in batches for k in b.links if k.trace_id.hex() == trace_id]
    assert link.span_id == request.span_id
    assert any(s.name == "publish" and s.kind == Span.SPAN_KIND_PRODUCER for s in in_trace)
    (line,) = [line for line in json_lines(server.log()) if line.get("request_id") == request_id]
    assert line["trace_id"] == trace_id


@pytest.fixture
def services() -> Iterator[str]:
    for name, port in (("NATS", 4222), ("PostgreSQL", 5432)):
        if not port_open("127.0.0.1", port):
            service_missing(name, f"nothing listens on 127.0.0.1:{port}")
    token = f"trace_{uuid.uuid4().hex[:10]}"
    yield token
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{token}" CASCADE')
    asyncio.run(drop_nats_streams(token))


def test_request_and_trace_ids_cross_the_broker_to_a_worker_process(
    tmp_path: Path, services: str
) -> None:
    env = {
        **JSON_LOGS,
        "SLIPSTREAM_BROKER_URL": f"nats://127.0.0.1:4222?prefix={services}&max_age=3600",
        "SLIPSTREAM_STORE_URL": f"{POSTGRES}?schema={services}",
    }
    api = ServerProcess(tmp_path, env, command="api").start()
    worker = WorkerProcess(tmp_path, env).start()
    try:
        with api.client() as client:
            request_id, trace_id, _ = post_traced(client, "two")

        lines = wait_until(
            lambda: batch_lines(worker.log, request_id), what=f"worker line naming {request_id}"
        )
        assert_batches(lines, trace_id)
        assert_request_line(json_lines(api.log()), request_id, trace_id)
    finally:
        worker.kill()
        api.kill()
