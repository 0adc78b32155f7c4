"""GET by id answers the same whether the short path or the framework's route serves it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from slipstream.api.point_reads import PointReads
from slipstream.api.tracing import valid_request_id
from tests.helpers import flight_event, log_lines, wait_until
from tests.unit.test_api import KEYS, make_client
from tests.unit.test_logs import TRACE, TRACEPARENT

URL = "/v1/datasets/flights/events/"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, api_keys=KEYS) as client:
        event = flight_event(7)
        headers = {"X-API-Key": "all-key-111"}
        assert client.post("/v1/datasets/flights/events", json=event, headers=headers).is_success
        wait_until(lambda: client.get(URL + event["id"], headers=headers).status_code == 200)
        yield client


def served_by_short_path(
    client: TestClient, path: str, headers: dict[str, str] | list[tuple[str, str]]
) -> bool:
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
    # A trace to continue sends the request through the framework's stack.
    framework = secured.get(URL + event_id, headers={**headers, "traceparent": TRACEPARENT})
    assert short.status_code == status
    assert (short.status_code, short.json()) == (framework.status_code, framework.json())
    assert served_by_short_path(secured, URL + event_id, headers) == (status == 200)


Headers = list[tuple[str, str]]
BEARER_READER = ("Authorization", "Bearer reader-key-1")
AMBIGUOUS = "with different values; send one"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([BEARER_READER, BEARER_READER], 200),
        ([BEARER_READER, ("Authorization", "Bearer nobody-at-all")], 401),
        ([("Authorization", "Bearer nobody-at-all"), BEARER_READER], 401),
        ([("Authorization", "Bearer ingest-key-1"), BEARER_READER], 401),
        ([("Authorization", "Basic eHl6OnNlY3JldA=="), BEARER_READER], 401),
        ([("X-API-Key", "reader-key-1"), ("X-API-Key", "reader-key-1")], 200),
        ([("X-API-Key", "reader-key-1"), ("X-API-Key", "ingest-key-1")], 401),
        ([("X-API-Key", "ingest-key-1"), ("X-API-Key", "reader-key-1")], 401),
        ([("X-API-Key", "reader-key-1"), BEARER_READER, ("Authorization", "Bearer x-y-z-1")], 401),
        ([("X-API-Key", "reader-key-1"), ("Authorization", "Bearer ingest-key-1")], 200),
    ],
)
def test_repeated_credentials_get_one_answer_on_every_path(
    secured: TestClient, headers: Headers, status: int
) -> None:
    event_id = flight_event(7)["id"]
    answers = [
        secured.get(URL + event_id, headers=headers),  # the short path
        # A trace to continue sends the request through the framework's stack.
        secured.get(URL + event_id, headers=[*headers, ("traceparent", TRACEPARENT)]),
        secured.get("/v1/datasets", headers=headers),
    ]
    assert [a.status_code for a in answers] == [status] * 3
    if status == 401:
        assert answers[0].json() == answers[1].json() == answers[2].json()
        assert AMBIGUOUS in answers[0].json()["error"]["message"]
    assert served_by_short_path(secured, URL + event_id, headers) == (status == 200)


def test_an_open_api_refuses_repeated_credentials_too(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        event = flight_event(8)
        client.post("/v1/datasets/flights/events", json=event)
        wait_until(lambda: client.get(URL + event["id"]).status_code == 200)
        twice = [BEARER_READER, ("Authorization", "Bearer another-1")]
        short = client.get(URL + event["id"], headers=twice)
        framework = client.get(URL + event["id"] + "?via=framework", headers=twice)
        assert (short.status_code, short.json()) == (framework.status_code, framework.json())
        assert short.status_code == 401
        assert AMBIGUOUS in short.json()["error"]["message"]


def test_a_query_string_goes_to_the_framework(secured: TestClient) -> None:
    headers = {"X-API-Key": "reader-key-1"}
    event_id = flight_event(7)["id"]
    assert not served_by_short_path(secured, URL + event_id + "?pretty=1", headers)
    assert served_by_short_path(secured, URL + event_id, headers)
    # Which refuses a parameter the route does not take, as every route does.
    answer = secured.get(URL + event_id + "?pretty=1", headers=headers)
    assert answer.status_code == 400
    assert "unknown query parameter 'pretty'" in answer.json()["error"]["message"]


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


def test_the_short_path_answers_with_a_request_id_and_one_access_line(
    secured: TestClient, captured: io.StringIO
) -> None:
    event_id = flight_event(7)["id"]
    headers = {"X-API-Key": "reader-key-1"}
    assert served_by_short_path(secured, URL + event_id, headers)
    captured.truncate(0)
    captured.seek(0)

    kept = secured.get(URL + event_id, headers={**headers, "X-Request-ID": "req-read-1"})
    replaced = secured.get(URL + event_id, headers={**headers, "X-Request-ID": "two words"})
    missing = secured.get(URL + "no-such-event", headers={**headers, "X-Request-ID": "req-404"})

    assert kept.headers["x-request-id"] == "req-read-1"
    assert valid_request_id(replaced.headers["x-request-id"])
    assert replaced.headers["x-request-id"] != "two words"
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "req-404")
    access = [line for line in log_lines(captured) if line["logger"] == "slipstream.access"]
    assert [(a["request_id"], a["status"]) for a in access] == [
        ("req-read-1", 200),
        (replaced.headers["x-request-id"], 200),
        ("req-404", 404),
    ]
    assert {(a["method"], a["route"], a["dataset"]) for a in access} == {
        ("GET", "/v1/datasets/{ds}/events/{event_id}", "flights")
    }
    assert all(event_id not in str(a["message"]) for a in access)  # the template, not the path


def test_a_trace_to_continue_goes_through_the_framework(
    secured: TestClient, captured: io.StringIO
) -> None:
    event_id = flight_event(7)["id"]
    headers = {"X-API-Key": "reader-key-1", "traceparent": TRACEPARENT}
    assert not served_by_short_path(secured, URL + event_id, headers)
    answer = secured.get(URL + event_id, headers={**headers, "X-Request-ID": "req-traced"})
    assert answer.status_code == 200
    assert answer.json()["id"] == event_id
    (line,) = [
        line
        for line in log_lines(captured)
        if line["logger"] == "slipstream.access" and line["request_id"] == "req-traced"
    ]
    assert line["trace_id"] == TRACE


def test_an_unexpected_failure_is_a_json_500_logged_with_the_request_id(
    secured: TestClient, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = secured.app.state.runtime  # type: ignore[attr-defined]

    async def broken(dataset: object, event_id: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runtime.store, "get", broken)
    answer = secured.get(
        URL + "never-cached", headers={"X-API-Key": "reader-key-1", "X-Request-ID": "req-500"}
    )
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal"
    assert answer.headers["x-request-id"] == "req-500"
    by_logger = {line["logger"]: line for line in log_lines(captured)}
    assert by_logger["slipstream.api"]["request_id"] == "req-500"
    assert "RuntimeError: disk on fire" in str(by_logger["slipstream.api"]["exception"])
    assert by_logger["slipstream.access"]["status"] == 500
