"""Values a store holds but no producer could send break no read.

Rows are put in with SQL, past validation: times past 9999 and before year 1 (in UTC), ±infinity,
floats whose average overflows PostgreSQL's, JSON orjson will not read (1e400) or not write back
(nested 300 deep). Every read of the API must answer 200 on DuckDB and PostgreSQL alike, with
the representation `stores/values.py` documents.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.config import Settings, path_from_url
from slipstream.datasets import load_catalog
from slipstream.runtime import Runtime
from slipstream.stores import create_store
from tests.contracts.backends import STORE_BACKENDS, Backend, selected
from tests.services import service_missing

DATASET = """
datasets:
  - name: readings
    description: Readings with every kind of field.
    key: id
    event_time: at
    fields:
      - {name: id, type: string}
      - {name: at, type: timestamp, required: true}
      - {name: seen, type: timestamp}
      - {name: kind, type: enum, values: [a, b]}
      - {name: value, type: float}
      - {name: count, type: int}
      - {name: payload, type: json}
"""
DEEP = "[" * 300 + "]" * 300
# id, at, seen, kind, value, count, payload, extra (`seen` in both databases' BC syntax).
ROWS = [
    ("r-ok", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "a", 1.5, 1, '{"a": 1}', None),
    ("r-big1", "2026-01-02T00:10:00Z", None, "a", 1e200, 2, None, None),
    ("r-big2", "2026-01-02T00:20:00Z", None, "a", 3e200, 3, None, None),
    ("r-late", "9999-12-31T23:59:59-14:00", "20000-01-01 00:00:00+00", "b", 1.0, 2**63 - 1,
     "[1e400]", '{"big": 1e400}'),
    ("r-late2", "10000-06-01 00:00:00+00", None, "b", None, None, DEEP, None),
    ("r-early", "0001-01-01T00:00:00+14:00", "{bc}", "a", None, -(2**63), None, None),
    ("r-inf", "infinity", "-infinity", "b", None, None, None, None),
    ("r-inf2", "infinity", None, "b", None, None, None, None),
]  # fmt: skip
NEWEST_FIRST = ["r-inf2", "r-inf", "r-late2", "r-late", "r-big2", "r-big1", "r-ok", "r-early"]
LATEST = "9999-12-31T23:59:59.999999Z"  # +infinity reads as the latest datetime


def insert_sql(table: str, bc: str) -> tuple[str, list[tuple[str | float | int | None, ...]]]:
    statement = (
        f'INSERT INTO {table} (id, "at", seen, kind, value, count, payload, extra) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = [tuple(bc if value == "{bc}" else value for value in row) for row in ROWS]
    return statement, rows


def duckdb_rows(settings: Settings) -> None:
    """Make the tables with the store, then write the rows with DuckDB itself."""

    async def make_tables() -> None:
        store = create_store(settings)
        await store.open(list(load_catalog(settings.datasets)))
        await store.close()

    asyncio.run(make_tables())
    statement, rows = insert_sql("readings", "0001-06-01 (BC) 12:00:00+00")
    with duckdb.connect(str(path_from_url(settings.store_url.split("?")[0]))) as conn:
        conn.executemany(statement, rows)


def postgres_rows(settings: Settings) -> None:
    import psycopg

    schema = dict(p.split("=") for p in urlsplit(settings.store_url).query.split("&"))["schema"]
    statement, rows = insert_sql(f"{schema}.readings", "0001-06-01 12:00:00+00 BC")
    conninfo = settings.store_url.split("?")[0]
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(statement.replace("?", "%s"), rows)


@pytest.fixture(
    params=[b for b in selected(STORE_BACKENDS) if b.name in ("duckdb", "postgres")],
    ids=lambda b: b.name,
)
def store_backend(request: pytest.FixtureRequest) -> Backend:
    """The stores whose columns can hold what no datetime can: BigQuery's TIMESTAMP, like a
    datetime, holds years 1 to 9999 only, so it has no such rows to read."""
    backend: Backend = request.param
    why = backend.unavailable()
    if why:
        service_missing(backend.name, why)
    return backend


@pytest.fixture
def client(store_backend: Backend, tmp_path: Path, token: str) -> Iterator[TestClient]:
    datasets = tmp_path / "datasets.yaml"
    datasets.write_text(DATASET)
    settings = store_backend.settings(tmp_path, token).model_copy(
        update={"broker_url": f"local:///{tmp_path / 'queue.db'}", "datasets": datasets}
    )
    if store_backend.name == "duckdb":
        duckdb_rows(settings)
    with TestClient(create_app(Runtime(settings))) as test_client:
        if store_backend.name == "postgres":
            postgres_rows(settings)
        yield test_client
    if store_backend.cleanup is not None:
        asyncio.run(store_backend.cleanup(token))


def ok(client: TestClient, url: str, **kwargs: object) -> bytes:
    answer = client.get(url, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 200, (url, answer.text)
    return answer.content


def test_every_read_answers_with_values_no_datetime_or_orjson_holds(client: TestClient) -> None:
    items = orjson.loads(ok(client, "/v1/datasets/readings/events"))["items"]
    assert [item["id"] for item in items] == NEWEST_FIRST
    by_id = {item["id"]: item for item in items}
    assert by_id["r-late"]["at"] == "+010000-01-01T13:59:59Z"
    assert by_id["r-late"]["seen"] == "+020000-01-01T00:00:00Z"
    assert by_id["r-early"]["at"] == "0000-12-31T10:00:00Z"  # 1 BC is year 0
    assert by_id["r-early"]["seen"] == "0000-06-01T12:00:00Z"  # 1 BC again
    assert by_id["r-inf"]["at"] == LATEST
    assert by_id["r-inf"]["seen"] == "0001-01-01T00:00:00Z"  # -infinity: the earliest
    assert by_id["r-late"]["payload"] == [None]  # 1e400: beyond a double
    assert by_id["r-late"]["extra"] == {"big": None}
    assert by_id["r-late2"]["payload"] == DEEP  # too deep to write back: its text
    assert by_id["r-late"]["count"] == 2**63 - 1
    for event_id, item in by_id.items():
        assert orjson.loads(ok(client, f"/v1/datasets/readings/events/{event_id}")) == item

    ndjson = ok(client, "/v1/datasets/readings/events", headers={"Accept": "application/x-ndjson"})
    assert [orjson.loads(line)["id"] for line in ndjson.splitlines()] == NEWEST_FIRST
    table = ok(client, "/v1/datasets/readings/events", headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert {row["id"]: row["at"] for row in rows}["r-late"] == "+010000-01-01T13:59:59Z"

    summary = orjson.loads(ok(client, "/v1/datasets"))["datasets"][0]
    assert summary["rows"] == len(ROWS)
    assert summary["newest_event_time"] == LATEST


def test_pages_visit_every_row_once_across_times_past_the_range(client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = orjson.loads(ok(client, "/v1/datasets/readings/events", params=params))
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == NEWEST_FIRST


def test_stats_and_time_bounds_at_the_edges(client: TestClient) -> None:
    stats = orjson.loads(ok(client, "/v1/datasets/readings/stats", params={"bucket": "day"}))
    buckets = {item["bucket"]: item for item in stats["items"]}
    # Two floats near 1e200 overflow PostgreSQL's float average: it is taken again in numeric.
    assert buckets["2026-01-02T00:00:00Z"]["avg_value"] == pytest.approx(2e200)
    assert buckets["+010000-01-01T00:00:00Z"]["count"] == 1
    assert buckets["0000-12-31T00:00:00Z"]["count"] == 1
    assert buckets[LATEST]["count"] == 2
    for group_by in ("seen", "kind"):
        ok(client, "/v1/datasets/readings/stats", params={"group_by": group_by})

    # A bound whose UTC value leaves years 1-9999 is refused before any store sees it; the
    # bounds at the edges of that range still find the rows beyond it.
    for bound in ({"since": "9999-12-31T23:59:59-14:00"}, {"until": "0001-01-01T00:00:00+14:00"}):
        for route in ("events", "stats"):
            answer = client.get(f"/v1/datasets/readings/{route}", params=bound)
            assert answer.status_code == 400, answer.text
            assert "outside the years 1 to 9999" in answer.json()["error"]["message"]
    late = {"since": "9999-12-31T00:00:00Z"}
    items = orjson.loads(ok(client, "/v1/datasets/readings/events", params=late))["items"]
    assert [item["id"] for item in items] == NEWEST_FIRST[:4]
    ok(client, "/v1/datasets/readings/stats", params=late)
    early = {"until": "0001-01-01T00:00:00Z"}
    items = orjson.loads(ok(client, "/v1/datasets/readings/events", params=early))["items"]
    assert [item["id"] for item in items] == ["r-early"]
