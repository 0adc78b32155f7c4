"""Optional OpenTelemetry tracing, and W3C trace context read without it.

Off by default. With `SLIPSTREAM_OTEL_ENABLED=true` spans go to an OTLP/HTTP collector that the
SDK's own variables name (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …). When off, every
helper here is a no-op and nothing of OpenTelemetry is imported, so the base install runs without
it; `traceparent` is then still parsed, so trace ids reach the logs and travel with the messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from slipstream.errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from slipstream.config import Settings

SpanKind = Literal["server", "producer", "consumer", "internal"]
MAX_LINKS = 128  # the SDK's default link limit; a batch links to this many producers at most
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_tracer: Tracer | None = None


class OtelMissing(MissingExtra):
    def __init__(self) -> None:
        ConfigError.__init__(
            self,
            "SLIPSTREAM_OTEL_ENABLED=true needs OpenTelemetry: pip install 'slipstream[otel]'",
        )


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid W3C `traceparent`, else None."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace, span, _ = match.groups()
    if version == "ff" or trace == "0" * 32 or span == "0" * 16:
        return None
    return trace, span


def setup_tracing(settings: Settings) -> None:
    """Install a TracerProvider exporting over OTLP/HTTP when tracing is enabled."""
    if not settings.otel_enabled:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise OtelMissing() from None
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create lets explicit attributes beat the environment: name it only as a default.
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "slipstream"})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    use_provider(provider)


def use_provider(provider: TracerProvider | None) -> None:
    """Trace through `provider` from now on (None: stop tracing)."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("slipstream")


def enabled() -> bool:
    return _tracer is not None


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = "internal",
    traceparent: str | None = None,
    links: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span made current for the block: the child of `traceparent` when given (a remote
    parent), else of the current span; linked to each traceparent in `links`. None when off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = (
        TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if traceparent
        else None
    )
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=getattr(trace.SpanKind, kind.upper()),
        links=_links(links),
        attributes=attributes,
    ) as current:
        yield current


def _links(traceparents: Iterable[str]) -> list[Any]:
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    links = []
    for value in traceparents:
        parsed = parse_traceparent(value)
        if parsed is None:
            continue
        flags = TraceFlags(int(value.strip()[-2:], 16) & TraceFlags.SAMPLED)
        context = SpanContext(int(parsed[0], 16), int(parsed[1], 16), True, flags)
        links.append(Link(context))
        if len(links) == MAX_LINKS:
            break
    return links


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, to hand on; None when off or outside a span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
