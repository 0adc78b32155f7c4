"""OpenTelemetry spans: HTTP request → publish → worker batch linked back to its producers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from slipstream import otel
from slipstream.api.app import create_app
from slipstream.config import Settings
from slipstream.errors import MissingExtra
from slipstream.runtime import Runtime
from tests.helpers import flight_event, wait_until

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.use_provider(provider)
    yield exporter
    otel.use_provider(None)
    provider.shutdown()


def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        batch_wait=0.05,
    )


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_worker_batch_links_to_the_http_requests_that_sent_it(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with TestClient(create_app(Runtime(settings(tmp_path)))) as client:
        continued = client.post(
            "/v1/datasets/flights/events",
            json=[flight_event(1), flight_event(2)],
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
        fresh = client.post("/v1/datasets/flights/events", json=flight_event(3))
        assert (continued.status_code, fresh.status_code) == (202, 202)
        wait_until(
            lambda: sum(len(s.links) for s in named(spans, "process batch")) >= 2,
            what="worker spans linking both requests",
        )

    requests = named(spans, "POST /v1/datasets/{ds}/events")
    assert len(requests) == 2
    assert all(s.kind is SpanKind.SERVER for s in requests)
    first = next(s for s in requests if f"{s.context.trace_id:032x}" == CALLER_TRACE)
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == CALLER_SPAN
    assert first.attributes is not None
    assert first.attributes["http.response.status_code"] == 202

    publishes = named(spans, "publish")
    assert {p.parent.span_id for p in publishes if p.parent} == {
        r.context.span_id for r in requests
    }
    assert all(p.kind is SpanKind.PRODUCER for p in publishes)

    batches = named(spans, "process batch")
    assert all(b.kind is SpanKind.CONSUMER and b.parent is None for b in batches)
    linked = {(link.context.trace_id, link.context.span_id) for b in batches for link in b.links}
    assert linked == {(r.context.trace_id, r.context.span_id) for r in requests}


def test_tracing_is_off_unless_enabled(tmp_path: Path) -> None:
    otel.setup_tracing(settings(tmp_path))

    assert not otel.enabled()
    assert otel.current_traceparent() is None
    with otel.span("anything", links=[f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"]) as span:
        assert span is None


def test_enabled_without_the_extra_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as it does where the extra is absent.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    enabled = settings(tmp_path).model_copy(update={"otel_enabled": True})

    with pytest.raises(MissingExtra, match=r"pip install 'slipstream\[otel\]'"):
        otel.setup_tracing(enabled)
    assert not otel.enabled()


def test_current_traceparent_names_the_current_span(spans: InMemorySpanExporter) -> None:
    with otel.span("outer", traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01") as span:
        assert span is not None
        context = span.get_span_context()
        assert otel.current_traceparent() == f"00-{CALLER_TRACE}-{context.span_id:016x}-01"
    assert otel.current_traceparent() is None
