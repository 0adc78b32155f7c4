"""Events and the rows a store takes, for the store tests of one backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from slipstream.datasets import Dataset
from slipstream.events import EventCodec, EventRows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows_of(dataset: Dataset, *events: dict[str, object]) -> EventRows:
    messages = [(str(e["id"]), orjson.dumps(e), T0) for e in events]
    rows, rejected = EventCodec(dataset).decode(messages)
    assert not rejected
    return rows


def event(i: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"ev-{i}",
        "flight_id": f"LA{i}",
        "status": "landed",
        "event_time": (T0 + timedelta(minutes=i)).isoformat(),
    }
    return base | fields
