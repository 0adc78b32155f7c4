"""`GET /status`: the page, the assets it links (all served here), its data and who may read it."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.api.status import SERIES
from slipstream.config import Settings
from slipstream.runtime import Runtime
from tests.helpers import flight_event

KEYS = "reader-key-1:read,ingest-key-1:ingest"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            # A data: URL is inline (the empty favicon): nothing to fetch.
            if name in ("href", "src") and value and not value.startswith("data:"):
                self.found.append(value)


def make_client(tmp_path: Path, **values: Any) -> TestClient:
    settings = Settings(
        _env_file=None,
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        **values,
    )
    return TestClient(create_app(Runtime(settings)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as test_client:
        yield test_client


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, api_keys=KEYS) as test_client:
        yield test_client


def runtime_of(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def test_the_page_is_html_and_every_asset_it_links_is_served_here(client: TestClient) -> None:
    page = client.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = Links()
    parser.feed(page.text)
    assert len(parser.found) >= 5
    for link in parser.found:
        url = urljoin("http://testserver/status", link)
        assert url.startswith("http://testserver/status/assets/"), f"{link} is not served here"
        answer = client.get(url)
        assert answer.status_code == 200, link
        assert answer.content, link
    scripts = [link for link in parser.found if link.endswith(".js")]
    assert {link.rsplit("/", 1)[1] for link in scripts} == {"uPlot.iife.min.js", "status.js"}


def test_assets_carry_their_media_type_and_unknown_names_are_404(client: TestClient) -> None:
    assert (
        client.get("/status/assets/status.js").headers["content-type"].startswith("text/javascript")
    )
    assert client.get("/status/assets/uPlot.min.css").headers["content-type"].startswith("text/css")
    assert client.get("/status/assets/status.html").status_code == 404
    assert client.get("/status/assets/..%2F..%2Fapp.py").status_code == 404


def test_series_is_columns_of_equal_length_on_a_time_axis(client: TestClient) -> None:
    history = runtime_of(client).status_history
    history.sample()
    answer = client.post("/v1/datasets/flights/events", json=[flight_event(i) for i in range(5)])
    assert answer.status_code == 202
    history.sample()
    history.sample()

    answer = client.get("/status/series")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"step_seconds", "window_seconds", "availability_objective", "t", "series"}
    assert body["step_seconds"] == 5.0
    assert body["window_seconds"] == 3600.0
    assert body["availability_objective"] == 0.999
    assert set(body["series"]) == set(SERIES)
    # The runtime's own sampler may add a snapshot meanwhile, so count what came back.
    points = len(body["t"])
    assert points >= 2
    assert body["t"] == sorted(body["t"])
    for name, values in body["series"].items():
        assert len(values) == points, name
    assert sum(body["series"]["ingested_per_s"]) > 0
    assert body["series"]["error_rate"][-1] in (0.0, None)


def test_the_page_is_open_but_its_data_needs_the_read_scope(secured: TestClient) -> None:
    assert secured.get("/status").status_code == 200
    assert secured.get("/status/assets/status.js").status_code == 200
    assert secured.get("/status/series").status_code == 401
    ingest_only = {"Authorization": "Bearer ingest-key-1"}
    assert secured.get("/status/series", headers=ingest_only).status_code == 403
    assert secured.get("/status/series", headers={"X-API-Key": "reader-key-1"}).status_code == 200
