"""The API's documented answers to every class of input, on the real embedded broker and store."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.errors import MessageTooLarge
from slipstream.runtime import Runtime
from tests.helpers import flight_event, settings, wait_until

KEYS = "reader-key-1:read,ingest-key-1:ingest,admin-key-11:admin,all-key-111:read+ingest+admin"
NDJSON = {"Content-Type": "application/x-ndjson"}


def make_client(tmp_path: Path, **values: Any) -> TestClient:
    configured = settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        **values,
    )
    return TestClient(create_app(Runtime(configured)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, max_body_bytes=64 * 1024) as test_client:
        yield test_client


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, api_keys=KEYS) as test_client:
        yield test_client


def error_of(answer) -> dict[str, object]:  # type: ignore[no-untyped-def]
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, object] = body["error"]
    return error


def test_unknown_dataset_is_404_naming_the_known_ones(client: TestClient) -> None:
    answer = client.post("/v1/datasets/trains/events", json=flight_event(1))
    assert answer.status_code == 404
    assert "no dataset named 'trains'; known datasets: flights" in str(error_of(answer)["message"])


def test_malformed_json_is_400_naming_line_and_column(client: TestClient) -> None:
    answer = client.post(
        "/v1/datasets/flights/events",
        content=b'{"flight_id": "LA1",\n "x": }',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert "line 2, column 7" in str(error_of(answer)["message"])


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b"\n".join(orjson.dumps(flight_event(i)) for i in range(1000))
    assert (
        client.post("/v1/datasets/flights/events", content=big, headers=NDJSON).status_code == 413
    )
    # The limit holds after decompression too: a small gzip body that inflates past it.
    bomb = gzip.compress(b" " * (1024 * 1024))
    answer = client.post(
        "/v1/datasets/flights/events", content=bomb, headers={**NDJSON, "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 413
    assert error_of(answer)["details"] == {"limit_bytes": 64 * 1024}


def test_unsupported_encoding_and_broken_gzip(client: TestClient) -> None:
    body = orjson.dumps(flight_event(1))
    answer = client.post(
        "/v1/datasets/flights/events", content=body, headers={"Content-Encoding": "br"}
    )
    assert answer.status_code == 415
    answer = client.post(
        "/v1/datasets/flights/events", content=b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 400
    assert "gzip" in str(error_of(answer)["message"])


def test_empty_body_and_all_invalid_events(client: TestClient) -> None:
    assert client.post("/v1/datasets/flights/events", content=b" \n").status_code == 400
    answer = client.post("/v1/datasets/flights/events", json=[{"status": "landed"}, 3])
    assert answer.status_code == 422
    error = error_of(answer)
    assert "none of the 2 events is valid" in str(error["message"])
    assert [r["index"] for r in error["details"]["rejected"]] == [0, 1]  # type: ignore[index]
    wait_until(
        lambda: len(client.get("/v1/datasets/flights/quarantine").json()["items"]) == 2,
        what="both events in quarantine",
    )


def test_valid_events_beside_bad_ones_land(client: TestClient) -> None:
    body = b"\n".join([orjson.dumps(flight_event(1)), b"{oops", orjson.dumps(flight_event(2))])
    answer = client.post("/v1/datasets/flights/events", content=body, headers=NDJSON)
    assert answer.status_code == 202
    assert answer.json()["ids"] == ["ev-0000001", "ev-0000002"]
    wait_until(
        lambda: client.get("/v1/datasets/flights/events/ev-0000002").status_code == 200,
        what="the second valid event",
    )
    assert (
        client.get("/v1/datasets/flights/events/ev-0000001").json()["flight_id"]
        == "LA801-2026-11-24"
    )


def test_list_filters_formats_and_cursor(client: TestClient) -> None:
    events = [flight_event(i) for i in range(30)]
    client.post("/v1/datasets/flights/events", json=events)
    wait_until(
        lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 30, what="30 rows"
    )
    first = client.get(
        "/v1/datasets/flights/events", params={"limit": 4, "status": "landed"}
    ).json()
    assert [e["status"] for e in first["items"]] == ["landed"] * 4
    second = client.get(
        "/v1/datasets/flights/events",
        params={"limit": 4, "status": "landed", "cursor": first["next_cursor"]},
    ).json()
    assert {e["id"] for e in first["items"]}.isdisjoint(e["id"] for e in second["items"])
    # A cursor is bound to its query, and a forged one is refused.
    other = client.get("/v1/datasets/flights/events", params={"cursor": first["next_cursor"]})
    assert other.status_code == 400
    assert "different query" in str(error_of(other)["message"])
    assert (
        client.get("/v1/datasets/flights/events", params={"cursor": "Zm9yZ2Vk"}).status_code == 400
    )
    csv = client.get(
        "/v1/datasets/flights/events", params={"limit": 2}, headers={"Accept": "text/csv"}
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("id,flight_id,status,event_time")
    assert "x-next-cursor" in csv.headers
    lines = client.get(
        "/v1/datasets/flights/events",
        params={"limit": 3},
        headers={"Accept": "application/x-ndjson"},
    ).text.splitlines()
    assert len(lines) == 3
    assert orjson.loads(lines[0])["id"]
    for bad in (
        {"stauts": "landed"},
        {"delay_minutes": "late"},
        {"status": "teleported"},
        {"since": "yesterday"},
        {"limit": 0},
    ):
        answer = client.get("/v1/datasets/flights/events", params=bad)
        assert answer.status_code == 400, bad
        assert error_of(answer)["message"]
    stats = client.get(
        "/v1/datasets/flights/stats", params={"bucket": "hour", "group_by": "status"}
    ).json()
    assert sum(item["count"] for item in stats["items"]) == 30
    assert client.get("/v1/datasets/flights/stats", params={"group_by": "nope"}).status_code == 400
    assert client.get("/v1/datasets/flights/events/missing").status_code == 404


def test_quarantine_replay_after_a_fix(client: TestClient) -> None:
    # Valid JSON, wrong shape: replay re-checks it against the current schema and keeps it.
    client.post(
        "/v1/datasets/flights/events", json=[flight_event(1), flight_event(2, status="teleported")]
    )
    wait_until(
        lambda: client.get("/v1/datasets/flights/quarantine").json()["items"], what="quarantine"
    )
    replay = client.post("/v1/datasets/flights/quarantine/replay").json()
    assert replay["replayed"] == 0
    assert "teleported" in replay["still_invalid"][0]["error"]


def test_scopes(secured: TestClient) -> None:
    event = flight_event(1)
    assert secured.get("/healthz").status_code == 200
    answer = secured.post("/v1/datasets/flights/events", json=event)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    wrong = secured.post(
        "/v1/datasets/flights/events", json=event, headers={"X-API-Key": "nope-nope-nope"}
    )
    assert wrong.status_code == 401
    as_reader = {"Authorization": "Bearer reader-key-1"}
    forbidden = secured.post("/v1/datasets/flights/events", json=event, headers=as_reader)
    assert forbidden.status_code == 403
    assert "lacks the 'ingest' scope" in str(error_of(forbidden)["message"])
    ok = secured.post(
        "/v1/datasets/flights/events", json=event, headers={"X-API-Key": "ingest-key-1"}
    )
    assert ok.status_code == 202
    assert secured.get("/v1/datasets", headers=as_reader).status_code == 200
    assert secured.get("/v1/datasets", headers={"X-API-Key": "ingest-key-1"}).status_code == 403
    assert (
        secured.post("/v1/datasets/flights/deadletter/replay", headers=as_reader).status_code == 403
    )
    # admin may replay and implies nothing else
    admin = {"X-API-Key": "admin-key-11"}
    assert secured.post("/v1/datasets/flights/deadletter/replay", headers=admin).json() == {
        "replayed": 0
    }
    assert secured.get("/v1/datasets", headers=admin).status_code == 403


def test_backlog_over_the_bound_is_503_with_retry_after(tmp_path: Path) -> None:
    with make_client(tmp_path, backlog_limit=1, batch_size=1) as client:
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        runtime.backlog["flights"] = 5  # as the monitor would see a stalled worker
        answer = client.post("/v1/datasets/flights/events", json=flight_event(1))
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert "over the bound of 1" in str(error_of(answer)["message"])


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "broker": "ok", "store": "ok"}
    client.post("/v1/datasets/flights/events", json=flight_event(1))
    text = client.get("/metrics").text
    assert (
        'slipstream_http_requests_total{code="202",dataset="flights",method="POST",route="/v1/datasets/{ds}/events"} 1.0'
        in text
    )
    assert 'slipstream_events_ingested_total{dataset="flights"} 1.0' in text
    assert "slipstream_broker_backlog" in text
    assert "slipstream_freshness_seconds_bucket" in text


def test_an_event_over_the_brokers_size_limit_is_413(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        real_publish = runtime.broker.publish

        async def publish_with_a_limit(dataset: str, messages: Any) -> None:
            # As a broker with a size limit does (SQS and SNS take 256 KiB).
            if any(len(m.data) > 1000 for m in messages):
                raise MessageTooLarge("message 'x' takes 2000 bytes; the broker accepts 1000")
            await real_publish(dataset, messages)

        runtime.broker.publish = publish_with_a_limit  # type: ignore[method-assign]
        answer = client.post("/v1/datasets/flights/events", json=flight_event(1, gate="G" * 2000))
        assert answer.status_code == 413
        assert "send smaller events" in str(error_of(answer)["message"])
