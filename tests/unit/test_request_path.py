"""One request path: the key is checked before any body byte is read, and every body is read by
one reader under one limit, on every route, with the JSON error body and the request id."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import Depends
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from slipstream.api.app import SlipstreamAPI, create_app
from slipstream.api.auth import require
from slipstream.api.body import BodyBudget
from slipstream.api.headers import SECURITY_HEADERS
from slipstream.runtime import Runtime
from tests.helpers import eventually, flight_event, settings, wait_until
from tests.unit.asgi_client import call
from tests.unit.test_api import KEYS, error_of, make_client
from tests.unit.test_logs import TRACEPARENT

LIMIT = 64 * 1024
BLOCK = os.urandom(LIMIT // 4)  # one chunk of a streamed body
NDJSON = ("content-type", "application/x-ndjson")
GZIP = ("content-encoding", "gzip")
EVENTS = "/v1/datasets/flights/events"


def make_app(tmp_path: Path, **values: Any) -> SlipstreamAPI:
    configured = settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        max_body_bytes=LIMIT,
        **values,
    )
    return create_app(Runtime(configured))


@pytest.fixture
async def open_app(tmp_path: Path) -> AsyncIterator[SlipstreamAPI]:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def keyed_app(tmp_path: Path) -> AsyncIterator[SlipstreamAPI]:
    app = make_app(tmp_path, api_keys=KEYS)
    async with app.router.lifespan_context(app):
        yield app


def body_routes(app: SlipstreamAPI) -> list[str]:
    """Every route of the OpenAPI document that takes a body, with a concrete path."""
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    return sorted(path.replace("{ds}", "flights") for path, item in paths.items() if "post" in item)


def ndjson(first: int, count: int) -> bytes:
    return b"".join(orjson.dumps(flight_event(n)) + b"\n" for n in range(first, first + count))


def test_every_member_of_a_gzip_body_is_read(tmp_path: Path) -> None:
    # Three members: two NDJSON halves (`cat a.gz b.gz`), and a JSON array split across two.
    with make_client(tmp_path) as client:
        body = gzip.compress(ndjson(0, 3)) + gzip.compress(ndjson(3, 3))
        answer = client.post(EVENTS, content=body, headers=dict([NDJSON, GZIP]))
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 6
        split_array = gzip.compress(b"[" + orjson.dumps(flight_event(6)) + b",")
        split_array += gzip.compress(orjson.dumps(flight_event(7)) + b"]")
        answer = client.post(EVENTS, content=split_array, headers=dict([GZIP]))
        assert answer.json()["ids"] == ["ev-0000006", "ev-0000007"]
        for n in range(8):  # accepted means stored, every one of them
            path = f"{EVENTS}/{flight_event(n)['id']}"

            def stored(path: str = path) -> bool:
                return client.get(path).status_code == 200

            wait_until(stored, what=f"event {n}")


@pytest.mark.parametrize("path", [EVENTS, "/push/sns/flights", "/push/pubsub/flights"])
async def test_bytes_after_the_gzip_data_are_refused_as_they_arrive(
    open_app: SlipstreamAPI, path: str
) -> None:
    # Chunked, no Content-Length: a valid member, then 4 MiB that are not one.
    chunks = [gzip.compress(ndjson(0, 2)), *[b"x" * len(BLOCK)] * 256]
    answer = await call(open_app, "POST", path, [NDJSON, GZIP], chunks)
    assert answer.status == 400
    assert "not another gzip member" in answer.error()["message"]
    assert answer.reads == 2  # refused at the first chunk of garbage, none of it kept


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_the_limit_counts_the_bytes_as_sent_and_as_decoded(
    open_app: SlipstreamAPI, encoding: str
) -> None:
    # Random bytes do not compress: their gzip form is over the limit though they are not.
    payload = os.urandom(LIMIT - 8)
    sent = gzip.compress(payload) if encoding == "gzip" else payload + b"12345678+"
    chunks = [sent[i : i + len(BLOCK)] for i in range(0, len(sent), len(BLOCK))]
    answer = await call(open_app, "POST", EVENTS, [("content-encoding", encoding)], chunks)
    assert answer.status == 413
    assert "(as sent)" in answer.error()["message"]
    # A gzip bomb is stopped a piece past the limit, in the first chunk that holds it.
    bomb = gzip.compress(b"\n" * (64 * LIMIT))
    answer = await call(open_app, "POST", EVENTS, [GZIP], [bomb])
    assert answer.status == 413
    assert answer.error()["details"] == {"limit_bytes": LIMIT}
    assert "(after decompression)" in answer.error()["message"]


async def test_every_route_with_a_body_reads_it_under_the_one_limit(
    open_app: SlipstreamAPI,
) -> None:
    routes = body_routes(open_app)
    assert {"/v1/datasets/flights/quarantine/replay", "/push/sns/flights"} <= set(routes)
    streamed = [BLOCK] * 64  # 1 MiB in chunks, no Content-Length
    for path in routes:
        answer = await call(
            open_app, "POST", path, [("content-type", "application/json")], streamed
        )
        assert answer.status == 413, (path, answer.body)
        assert answer.reads <= LIMIT // len(BLOCK) + 1, path
        declared = [("content-type", "application/json"), ("content-length", str(LIMIT + 1))]
        answer = await call(open_app, "POST", path, declared, [b"{}"])
        assert (answer.status, answer.reads) == (413, 0), path
        answer = await call(open_app, "POST", path, [("content-encoding", "br")], [b"{}"])
        assert answer.status == 415, path
        assert "send gzip or no encoding" in answer.error()["message"]


async def test_every_route_checks_the_key_before_reading_a_body(keyed_app: SlipstreamAPI) -> None:
    paths: dict[str, dict[str, object]] = keyed_app.openapi()["paths"]
    declared = [("content-type", "application/json"), ("content-length", str(100 * 2**20))]
    for template, item in paths.items():
        if template.startswith("/push/"):  # they check tokens and signatures of their own
            continue
        path = template.replace("{ds}", "flights").replace("{event_id}", "x")
        for method in item:
            answer = await call(keyed_app, method.upper(), path, declared, [BLOCK] * 400)
            assert answer.reads == 0, (method, path)
            if path.startswith("/v1/") or path == "/status/series":
                assert answer.status == 401, (method, path)
                assert "an API key is required" in answer.error()["message"]


async def test_a_body_that_stops_arriving_is_abandoned(tmp_path: Path) -> None:
    app = make_app(tmp_path, body_timeout=0.2)
    async with app.router.lifespan_context(app):
        answer = await call(app, "POST", EVENTS, [NDJSON], [ndjson(0, 1)], stall=True)
    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    assert "no body bytes arrived for 0.2 s" in answer.error()["message"]


def test_an_unguarded_route_fails_closed_with_the_request_id(tmp_path: Path) -> None:
    app = make_app(tmp_path, api_keys=KEYS)
    app.router.route_class = APIRoute  # as a route added without the app's route class

    @app.get("/unguarded", dependencies=[Depends(require("read"))])
    async def unguarded() -> dict[str, bool]:
        return {"served": True}

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/unguarded", headers={"X-Request-ID": "req-unguarded-1"})
    assert answer.status_code == 500
    assert error_of(answer)["code"] == "internal"
    assert answer.headers["x-request-id"] == "req-unguarded-1"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_every_answer_carries_the_security_headers(tmp_path: Path) -> None:
    expected = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
    with make_client(tmp_path, api_keys=KEYS) as client:
        reader = {"X-API-Key": "reader-key-1"}
        answers = [
            client.get("/healthz"),
            client.get("/status"),
            client.get("/docs"),
            client.get("/openapi.json"),
            client.get("/nowhere"),
            client.get(f"{EVENTS}/missing", headers=reader),  # the short path of reads by id
            # A trace to continue sends a read by id through the framework's routes.
            client.get(f"{EVENTS}/missing", headers={**reader, "traceparent": TRACEPARENT}),
            client.post(EVENTS, json=flight_event(1)),
            client.post(EVENTS, content=b"x" * (17 * 2**20), headers={"X-API-Key": "ingest-key-1"}),
        ]
    for answer in answers:
        assert {k: answer.headers.get(k) for k in expected} == expected, answer.request.url
        assert answer.headers["x-request-id"]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 404, 404, 401, 413]


async def test_push_routes_refuse_two_authorization_headers(open_app: SlipstreamAPI) -> None:
    # Pub/Sub push reads its OIDC token from the one Authorization header there must be.
    twice = [("authorization", "Bearer token-one"), ("authorization", "Bearer token-two")]
    for path in ("/push/pubsub/flights", "/push/sns/flights"):
        answer = await call(open_app, "POST", path, twice, [b"{}"])
        assert (answer.status, answer.reads) == (401, 0), path
        assert "two Authorization headers" in answer.error()["message"]


async def test_bodies_held_at_once_stay_within_one_budget(tmp_path: Path) -> None:
    app = make_app(tmp_path, body_timeout=0.5, body_memory_bytes=LIMIT)
    three_quarters = [BLOCK] * 3
    async with app.router.lifespan_context(app):
        # One request holds three quarters of the budget while its body stalls…
        stalled = asyncio.create_task(
            call(app, "POST", EVENTS, [NDJSON], three_quarters, stall=True)
        )
        budget = app.state.body_limits.budget
        await eventually(lambda: _holds(budget, 3 * len(BLOCK)), what="the stalled body held")
        # …so another of the same size is turned away, whole and with a reason.
        refused = await call(app, "POST", EVENTS, [NDJSON], three_quarters)
        assert refused.status == 503
        assert refused.headers["retry-after"]
        assert "SLIPSTREAM_BODY_MEMORY_BYTES" in refused.error()["message"]
        assert (await stalled).status == 408
        # Both gave their bytes back: a body of the same size is taken again.
        assert budget.held == 0
        taken = await call(app, "POST", EVENTS, [NDJSON], [ndjson(0, 3)])
        assert taken.status == 202


async def _holds(budget: BodyBudget, size: int) -> bool:
    return budget.held == size


def test_the_body_budget_has_room_for_one_body(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least SLIPSTREAM_MAX_BODY_BYTES"):
        make_app(tmp_path, body_memory_bytes=LIMIT - 1)


def test_405_names_every_method_of_the_path(tmp_path: Path) -> None:
    """Starlette names only the methods of the first route whose path matches; the GET and the
    POST of the events are two routes."""
    with make_client(tmp_path) as client:
        for method in ("PUT", "DELETE", "OPTIONS"):
            answer = client.request(method, EVENTS)
            assert answer.status_code == 405
            assert answer.headers["allow"] == "GET, POST"
            assert "only GET, POST" in str(error_of(answer)["message"])
        assert client.put("/healthz").headers["allow"] == "GET"
