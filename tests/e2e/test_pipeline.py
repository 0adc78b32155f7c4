"""The whole embedded pipeline over real HTTP: ingest → local broker → worker → DuckDB → API."""

from __future__ import annotations

import gzip
import signal

import orjson
import pytest

from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until

pytestmark = pytest.mark.e2e
NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(events: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events) + b"\n"


def test_thousand_events_and_a_few_invalid_ones_land(server: ServerProcess) -> None:
    events = [flight_event(i) for i in range(1000)]
    invalid = [
        b'{"id": "bad-1", "flight_id": "LA1", "status": "teleported", "event_time": "2026-11-24T10:00:00Z"}',
        b'{"id": "bad-2", "status": "landed", "event_time": "2026-11-24T10:00:00Z"}',
        b'{"id": "bad-3", "flight_id": "LA1", "status": "landed", "event_time": "yesterday"}',
        b"{not json",
    ]
    with server.client() as client:
        for start in range(0, 1000, 250):
            answer = client.post(
                "/v1/datasets/flights/events",
                content=ndjson(events[start : start + 250]),
                headers=NDJSON,
            )
            assert answer.status_code == 202, answer.text
            assert answer.json()["accepted"] == 250
        mixed = b"\r\n".join([invalid[0], orjson.dumps(flight_event(5000)), b"", *invalid[1:]])
        answer = client.post("/v1/datasets/flights/events", content=mixed, headers=NDJSON)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["accepted"] == 1
        assert [r["index"] for r in body["rejected"]] == [0, 2, 3, 4]
        assert "teleported" in body["rejected"][0]["error"]
        assert "flight_id" in body["rejected"][1]["error"]

        wait_until(
            lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 1001,
            timeout=30,
            what="1001 rows",
        )
        stored = stored_ids(client)
        assert sorted(stored) == sorted([str(e["id"]) for e in events] + ["ev-0005000"])

        quarantine = wait_until(
            lambda: (
                (q := client.get("/v1/datasets/flights/quarantine").json()["items"])
                and len(q) == 4
                and q
            ),
            timeout=30,
            what="4 quarantined events",
        )
        reasons = " | ".join(q["reason"] for q in quarantine)
        assert "teleported" in reasons
        assert "flight_id" in reasons
        assert "not valid JSON" in reasons
        assert all(q["raw"] and q["received_at"] for q in quarantine)

        one = client.get("/v1/datasets/flights/events/ev-0000042").json()
        assert one == {**events[42], "event_time": one["event_time"], "extra": None}
        assert one["event_time"].startswith("2026-11-24T00:00:42.042")


def test_gzip_body_and_compressed_answers(server: ServerProcess) -> None:
    events = [flight_event(i, prefix="gz") for i in range(300)]
    with server.client() as client:
        answer = client.post(
            "/v1/datasets/flights/events",
            content=gzip.compress(ndjson(events)),
            headers={**NDJSON, "Content-Encoding": "gzip"},
        )
        assert answer.status_code == 202, answer.text
        wait_until(lambda: len(stored_ids(client)) == 300, what="300 rows")
        listing = client.get(
            "/v1/datasets/flights/events",
            params={"limit": 300},
            headers={"Accept-Encoding": "gzip"},
        )
        assert listing.headers["content-encoding"] == "gzip"
        assert len(listing.json()["items"]) == 300


def test_sigterm_stops_cleanly(server: ServerProcess) -> None:
    with server.client() as client:
        answer = client.post("/v1/datasets/flights/events", json=flight_event(1, prefix="term"))
        assert answer.status_code == 202
        wait_until(
            lambda: client.get("/v1/datasets/flights/events/term-0000001").status_code == 200,
            what="the event to be stored",
        )
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended.
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log(), server.log()
