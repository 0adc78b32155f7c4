"""Where a batch's messages came from, for the worker's log lines and span links: the request ids
and the producers' traceparents the API put in each message's attributes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slipstream import otel
from slipstream.brokers import Delivery

LOGGED_IDS = 5  # request and trace ids named in a batch line; a batch may carry thousands


@dataclass(frozen=True, slots=True)
class Origins:
    """Where a batch came from: the first few distinct request ids, and producers' traceparents."""

    request_ids: list[str]
    traceparents: list[str]

    @classmethod
    def of(cls, deliveries: Sequence[Delivery]) -> Origins:
        request_ids: dict[str, None] = {}  # insertion-ordered set
        traceparents: dict[str, None] = {}
        for delivery in deliveries:
            attributes = delivery.attributes
            if (rid := attributes.get("request_id")) and len(request_ids) < LOGGED_IDS:
                request_ids[rid] = None
            if (parent := attributes.get("traceparent")) and len(traceparents) < otel.MAX_LINKS:
                traceparents[parent] = None
        return cls(list(request_ids), list(traceparents))

    def trace_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for parent in self.traceparents:
            if (parsed := otel.parse_traceparent(parent)) is not None:
                ids[parsed[0]] = None
                if len(ids) == LOGGED_IDS:
                    break
        return list(ids)


def of_message(delivery: Delivery, **fields: str) -> dict[str, str]:
    """Log fields naming one message and the request that sent it."""
    fields["event_id"] = delivery.key
    if request_id := delivery.attributes.get("request_id"):
        fields["request_id"] = request_id
    if (parsed := otel.parse_traceparent(delivery.attributes.get("traceparent"))) is not None:
        fields["trace_id"] = parsed[0]
    return fields
