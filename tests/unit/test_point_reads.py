"""GET by id answers the same whether the short path or the framework's route serves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from slipstream.api.point_reads import PointReads
from tests.helpers import flight_event, wait_until
from tests.unit.test_api import KEYS, make_client

URL = "/v1/datasets/flights/events/"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, api_keys=KEYS) as client:
        event = flight_event(7)
        headers = {"X-API-Key": "all-key-111"}
        assert client.post("/v1/datasets/flights/events", json=event, headers=headers).is_success
        wait_until(lambda: client.get(URL + event["id"], headers=headers).status_code == 200)
        yield client


def served_by_short_path(client: TestClient, path: str, headers: dict[str, str]) -> bool:
    """Whether PointReads answered: it marks the scope with its own route object."""
    seen: list[object] = []
    app = client.app
    original = PointReads._target

    def spy(self: PointReads, scope: dict[str, object]) -> tuple[str, str] | None:
        target = original(self, scope)  # type: ignore[arg-type]
        seen.append(target)
        return target

    PointReads._target = spy  # type: ignore[method-assign]
    try:
        client.get(path, headers=headers)
    finally:
        PointReads._target = original  # type: ignore[method-assign]
    assert app is client.app
    return seen[-1] is not None


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-API-Key": "reader-key-1"}, 200),
        ({"Authorization": "Bearer reader-key-1"}, 200),
        ({"Authorization": "Basic xyz", "X-API-Key": "reader-key-1"}, 200),
        ({"Authorization": "Bearer ingest-key-1", "X-API-Key": "reader-key-1"}, 200),
        ({"Authorization": "Bearer reader-key-1", "X-API-Key": "ingest-key-1"}, 403),
        ({}, 401),
        ({"X-API-Key": "nobody"}, 401),
        ({"X-API-Key": "ingest-key-1"}, 403),
    ],
)
def test_keys_and_scopes_match_the_route(
    secured: TestClient, headers: dict[str, str], status: int
) -> None:
    event_id = flight_event(7)["id"]
    short = secured.get(URL + event_id, headers=headers)
    framework = secured.get(URL + event_id + "?via=framework", headers=headers)
    assert short.status_code == status
    assert (short.status_code, short.json()) == (framework.status_code, framework.json())
    assert served_by_short_path(secured, URL + event_id, headers) == (status == 200)


def test_a_query_string_goes_to_the_framework(secured: TestClient) -> None:
    headers = {"X-API-Key": "reader-key-1"}
    event_id = flight_event(7)["id"]
    assert not served_by_short_path(secured, URL + event_id + "?pretty=1", headers)
    assert served_by_short_path(secured, URL + event_id, headers)


def test_missing_event_and_unknown_dataset(secured: TestClient) -> None:
    headers = {"X-API-Key": "reader-key-1"}
    missing = secured.get(URL + "no-such-event", headers=headers)
    assert missing.status_code == 404
    assert (
        missing.json()["error"]["message"] == "no event 'no-such-event' in dataset 'flights' (yet)"
    )
    assert missing.headers["content-type"] == "application/json"
    unknown = secured.get("/v1/datasets/nope/events/x", headers=headers)
    assert unknown.status_code == 404
    assert "no dataset named 'nope'" in unknown.json()["error"]["message"]
    assert not served_by_short_path(secured, "/v1/datasets/nope/events/x", headers)
    # Deeper paths are not event ids: the framework answers (no such route).
    assert secured.get(URL + "a/b", headers=headers).status_code == 404


def test_reads_are_counted_by_route_template_and_dataset(secured: TestClient) -> None:
    route = 'route="/v1/datasets/{ds}/events/{event_id}"'

    def count(code: int) -> float:
        series = f'slipstream_http_requests_total{{code="{code}",dataset="flights",method="GET",{route}}} '
        lines = [
            line for line in secured.get("/metrics").text.splitlines() if line.startswith(series)
        ]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    headers = {"X-API-Key": "reader-key-1"}
    found, missing = count(200), count(404)
    for _ in range(3):
        secured.get(URL + flight_event(7)["id"], headers=headers)
    secured.get(URL + "no-such-event", headers=headers)
    assert (count(200), count(404)) == (found + 3, missing + 1)
    assert "no-such-event" not in secured.get("/metrics").text  # never a raw path as a label
