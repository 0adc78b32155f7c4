"""Every parameter a client sends is checked at the API, the same on every store: a value out
of range is a 400 naming it (never a 5xx), a parameter a route does not take is a 400 (never
silently ignored), and stats take the list's filters. On the embedded broker, over each store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.runtime import Runtime
from tests import helpers
from tests.contracts.backends import STORE_BACKENDS, Backend, selected
from tests.helpers import wait_until
from tests.services import service_missing

DATASETS = """
datasets:
  - name: readings
    key: id
    event_time: at
    fields:
      - {name: id, type: string}
      - {name: at, type: timestamp, required: true}
      - {name: kind, type: enum, values: [temp, wind]}
      - {name: station, type: string}
      - {name: count, type: int}
      - {name: level, type: float}
      - {name: ok, type: bool}
      - {name: seen, type: timestamp}
      - {name: raw, type: json}
"""
EVENTS = "/v1/datasets/readings/events"
STATS = "/v1/datasets/readings/stats"
FAR_WEST = "9999-12-31T23:59:59-14:00"  # a valid RFC 3339 time past year 9999 in UTC
FAR_EAST = "0001-01-01T00:00:00%2B14:00"  # and one before year 1


def reading(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"r-{n:04d}",
        "at": f"2026-11-24T10:{n % 60:02d}:00Z",
        "kind": ("temp", "wind")[n % 2],
        "station": f"S{n % 3}",
        "count": n,
        "level": n / 4,
        "ok": n % 5 == 0,
        **fields,
    }


def make_client(
    tmp_path: Path, store_url: str | None = None, backend: Backend | None = None, **values: Any
) -> TestClient:
    datasets = tmp_path / "datasets.yaml"
    datasets.write_text(DATASETS)
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=store_url or f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        datasets=datasets,
        **values,
    )
    store = backend.open_store(settings) if backend is not None else None
    return TestClient(create_app(Runtime(settings, store=store)), raise_server_exceptions=False)


@pytest.fixture(params=selected(STORE_BACKENDS), ids=lambda b: b.name)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    backend: Backend = request.param
    why = backend.unavailable()
    if why:
        service_missing(backend.name, why)
    token = uuid.uuid4().hex[:12]
    store_url = backend.settings(tmp_path, token).store_url
    with make_client(tmp_path, store_url, backend) as test_client:
        yield test_client
    if backend.cleanup is not None:
        asyncio.run(backend.cleanup(token))


def error_of(answer: Any) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


OUT_OF_RANGE = [
    (f"{EVENTS}?count=99999999999999999999999", "out of range"),
    (f"{EVENTS}?count=9223372036854775808", "out of range"),
    (f"{EVENTS}?count=-9223372036854775809", "out of range"),
    (f"{EVENTS}?count=1_000", "must be an integer"),
    (f"{STATS}?count=99999999999999999999999", "out of range"),
    (f"{EVENTS}?level=nan", "finite"),
    (f"{EVENTS}?level=inf", "finite"),
    (f"{EVENTS}?level=1e999", "finite"),
    (f"{STATS}?level=-Infinity", "finite"),
    (f"{EVENTS}?since={FAR_WEST}", "since="),
    (f"{EVENTS}?until={FAR_EAST}", "until="),
    (f"{STATS}?since={FAR_EAST}", "since="),
    (f"{EVENTS}?seen={FAR_WEST}", "seen="),
    (f"{STATS}?at={FAR_EAST}", "at="),
    (f"{EVENTS}?station=a%00b", "NUL"),
    (f"{STATS}?station=%00", "NUL"),
    (f"{EVENTS}/a%00b", "NUL"),
    (f"{EVENTS}?limit=99999999999999999999", "limit"),
    (f"{EVENTS}?limit=0", "limit"),
    (f"{EVENTS}?raw=1", "json field"),
    (f"{STATS}?bucket=week", "bucket"),
    (f"{STATS}?group_by=raw", "group_by"),
    ("/v1/datasets/readings/quarantine?limit=1001", "limit"),
    ("/v1/datasets/readings/deadletter?limit=-1", "limit"),
]


@pytest.mark.parametrize(("path", "words"), OUT_OF_RANGE)
def test_a_parameter_out_of_range_is_a_400_naming_it(
    client: TestClient, path: str, words: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 400, answer.text
    assert words in error_of(answer)["message"]


def test_stats_take_the_list_filters(client: TestClient) -> None:
    events = [reading(n) for n in range(24)]
    assert client.post(EVENTS, json=events).status_code == 202
    wait_until(
        lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 24, what="24 rows"
    )
    for filters in (
        {"kind": "wind"},
        {"kind": "temp", "station": "S1"},
        {"ok": "true"},
        {"count": "7"},
        {"level": "2.5"},
        {"at": "2026-11-24T10:03:00Z"},
        {"station": "nowhere"},
    ):
        listed = client.get(EVENTS, params={**filters, "limit": 1000}).json()["items"]
        stats = client.get(STATS, params={**filters, "group_by": "kind"})
        assert stats.status_code == 200, stats.text
        counts = {item["group"]: item["count"] for item in stats.json()["items"]}
        expected: dict[str, int] = {}
        for item in listed:
            expected[item["kind"]] = expected.get(item["kind"], 0) + 1
        assert counts == expected, filters
    ranged = client.get(
        STATS, params={"kind": "wind", "since": "2026-11-24T10:10:00Z", "bucket": "day"}
    ).json()
    assert [item["count"] for item in ranged["items"]] == [7]  # 11, 13, …, 23
    assert ranged["items"][0]["avg_count"] == 17


def concrete(path: str) -> str:
    return (
        path.replace("{ds}", "readings").replace("{event_id}", "r-1").replace("{name}", "status.js")
    )


def test_a_parameter_a_route_does_not_take_is_a_400_on_every_route(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
        every = [
            (method.upper(), concrete(path)) for path, item in paths.items() for method in item
        ]
        every += [("GET", "/"), ("GET", "/status/assets/status.js")]  # not in the document
        assert ("GET", "/v1/datasets/readings/quarantine") in every
        assert ("POST", "/push/pubsub/readings") in every
        for method, path in every:
            answer = client.request(method, path, params={"limt": "5"})
            assert answer.status_code == 400, (method, path, answer.text)
            assert "unknown query parameter 'limt'" in error_of(answer)["message"]
        # A repeated parameter, even a declared one, is not silently resolved either.
        for path in (EVENTS, STATS, "/v1/datasets/readings/quarantine"):
            answer = client.get(f"{path}?limit=5&limit=6")
            assert answer.status_code == 400
            assert "given twice" in error_of(answer)["message"]
        # What the message offers is what the route takes.
        details = error_of(client.get("/v1/datasets/readings/deadletter?after=3"))["details"]
        assert details == {"parameter": "after", "accepted": ["cursor", "limit"]}
        message = error_of(client.get(f"{STATS}?stauts=wind"))["message"]
        assert "a field of 'readings' (id, at, kind" in message
        assert "bucket, group_by, since, until" in message


def test_unknown_parameters_are_refused_only_after_the_key_check(tmp_path: Path) -> None:
    """The filter check lists the dataset's fields: only to a caller with the read scope."""
    with make_client(tmp_path, api_keys="ingest-key-1:ingest") as client:
        for path in (f"{EVENTS}?stauts=wind", f"{STATS}?stauts=wind"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"X-API-Key": "ingest-key-1"}).status_code == 403


def test_a_quarantine_replay_names_the_ids_it_did_not_find(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        client.post(EVENTS, json=[reading(1), reading(2, kind="rain")])
        wait_until(
            lambda: client.get("/v1/datasets/readings/quarantine").json()["items"],
            what="the invalid reading in quarantine",
        )
        (kept,) = [i["id"] for i in client.get("/v1/datasets/readings/quarantine").json()["items"]]
        answer = client.post(
            "/v1/datasets/readings/quarantine/replay",
            json={"ids": [kept, "nope", "r-0001", "nope"]},
        )
        assert answer.status_code == 200
        body = answer.json()
        assert [item["id"] for item in body.pop("still_invalid")] == [kept]
        assert body == {"replayed": 0, "released": 0, "not_found": ["nope", "r-0001"]}
        everything = client.post("/v1/datasets/readings/quarantine/replay").json()
        assert everything["not_found"] == []
        for body in (b'{"ids": ["a\\u0000b"]}', b'{"ids": ["\\ud800"]}', b'{"ids": "x"}'):
            answer = client.post(
                "/v1/datasets/readings/quarantine/replay",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 400, body
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        described = schema["QuarantineReplayed"]["properties"]
        assert {"replayed", "released", "still_invalid", "not_found"} <= set(described)
        assert "removed from the quarantine" in described["released"]["description"]
