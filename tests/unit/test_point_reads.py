"""GET by id: a route served without FastAPI's dependency solver, answering like every route.

It runs inside the app's one request pipeline, is authorised by the same function and its errors
are rendered by the same function as every route; these tests hold it to that, beside a route
FastAPI serves in full (`GET /v1/datasets`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import Response

from slipstream.api.app import SlipstreamAPI
from slipstream.api.deps import ReadDataset
from slipstream.api.pipeline import RequestPipeline
from slipstream.api.point_reads import PointReadRoute
from slipstream.api.tracing import valid_request_id
from tests.helpers import flight_event, log_lines, wait_until
from tests.unit.test_api import KEYS, make_client
from tests.unit.test_logs import TRACE, TRACEPARENT

URL = "/v1/datasets/flights/events/"
Headers = list[tuple[str, str]]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, api_keys=KEYS) as client:
        event = flight_event(7)
        headers = {"X-API-Key": "all-key-111"}
        assert client.post("/v1/datasets/flights/events", json=event, headers=headers).is_success
        wait_until(lambda: client.get(URL + str(event["id"]), headers=headers).status_code == 200)
        yield client


def test_the_app_is_one_pipeline_around_the_router(secured: TestClient) -> None:
    app = secured.app
    assert isinstance(app, SlipstreamAPI)
    stack = app.middleware_stack
    assert isinstance(stack, RequestPipeline)
    assert stack.app == app.router.app  # the router's routing, with no layer of its own
    routes = [r for r in app.router.routes if isinstance(r, PointReadRoute)]
    assert [r.path for r in routes] == ["/v1/datasets/{ds}/events/{event_id:path}"]
    assert app.router.routes[0] is routes[0]  # the hottest route is tried first


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
def test_keys_and_scopes_match_every_route(
    secured: TestClient, headers: dict[str, str], status: int
) -> None:
    by_id = secured.get(URL + str(flight_event(7)["id"]), headers=headers)
    listed = secured.get("/v1/datasets", headers=headers)
    assert (by_id.status_code, listed.status_code) == (status, status)
    if status != 200:
        assert by_id.json() == listed.json()
        assert by_id.headers.get("www-authenticate") == listed.headers.get("www-authenticate")


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
    event_id = str(flight_event(7)["id"])
    answers = [
        secured.get(URL + event_id, headers=headers),
        secured.get(URL + event_id, headers=[*headers, ("traceparent", TRACEPARENT)]),
        secured.get("/v1/datasets", headers=headers),
    ]
    assert [a.status_code for a in answers] == [status] * 3
    if status == 401:
        assert answers[0].json() == answers[1].json() == answers[2].json()
        assert AMBIGUOUS in answers[0].json()["error"]["message"]


def test_an_open_api_refuses_repeated_credentials_too(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        event = flight_event(8)
        client.post("/v1/datasets/flights/events", json=event)
        wait_until(lambda: client.get(URL + str(event["id"])).status_code == 200)
        twice = [BEARER_READER, ("Authorization", "Bearer another-1")]
        by_id = client.get(URL + str(event["id"]), headers=twice)
        listed = client.get("/v1/datasets", headers=twice)
        assert (by_id.status_code, by_id.json()) == (listed.status_code, listed.json())
        assert by_id.status_code == 401
        assert AMBIGUOUS in by_id.json()["error"]["message"]


def test_a_query_parameter_is_refused_as_on_every_route(secured: TestClient) -> None:
    headers = {"X-API-Key": "reader-key-1"}
    event_id = str(flight_event(7)["id"])
    answer = secured.get(URL + event_id + "?pretty=1", headers=headers)
    assert answer.status_code == 400
    assert "unknown query parameter 'pretty'" in answer.json()["error"]["message"]
    assert answer.json()["error"]["details"] == {"parameter": "pretty", "accepted": []}
    # Without the read scope the caller learns nothing else, the parameter included.
    assert secured.get(URL + event_id + "?pretty=1").status_code == 401


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
    # POST to an event's path: the router's own refusal, in the API's words.
    refused = secured.post(URL + "x", headers=headers)
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert refused.headers["allow"] == "GET"
    assert refused.headers["x-content-type-options"] == "nosniff"


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
        secured.get(URL + str(flight_event(7)["id"]), headers=headers)
    secured.get(URL + "no-such-event", headers=headers)
    assert (count(200), count(404)) == (found + 3, missing + 1)
    assert "no-such-event" not in secured.get("/metrics").text  # never a raw path as a label


def test_a_read_answers_with_a_request_id_and_one_access_line(
    secured: TestClient, captured: io.StringIO
) -> None:
    event_id = str(flight_event(7)["id"])
    headers = {"X-API-Key": "reader-key-1"}
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


def test_a_trace_is_continued(secured: TestClient, captured: io.StringIO) -> None:
    event_id = str(flight_event(7)["id"])
    headers = {"X-API-Key": "reader-key-1", "traceparent": TRACEPARENT}
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
    assert isinstance(secured.app, FastAPI)
    runtime = secured.app.state.runtime

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


def test_an_id_holding_slashes_is_read_back(secured: TestClient) -> None:
    headers = {"X-API-Key": "all-key-111"}
    event = flight_event(9, id="LA800/2026-11-24/../x?y#z")
    answer = secured.post("/v1/datasets/flights/events", json=event, headers=headers)
    assert answer.json()["ids"] == [event["id"]]
    path = URL + quote(str(event["id"]), safe="")
    read = wait_until(lambda: (a := secured.get(path, headers=headers)).status_code == 200 and a)
    assert read.json()["id"] == event["id"]


async def takes_a_limit(
    request: Request, dataset: ReadDataset, event_id: str, limit: int
) -> Response:
    return Response()


async def reads(request: Request, dataset: ReadDataset, event_id: str) -> Response:
    return Response()


def test_a_declaration_the_route_would_not_honour_is_refused_at_build() -> None:
    with pytest.raises(TypeError, match="PointReadRoute resolves only"):
        PointReadRoute("/v1/datasets/{ds}/events/{event_id:path}", takes_a_limit)
    with pytest.raises(TypeError, match="path converters"):  # it matches without converting
        PointReadRoute("/v1/datasets/{ds}/events/{event_id:int}", reads)
    PointReadRoute("/v1/datasets/{ds}/events/{event_id:path}", reads)
