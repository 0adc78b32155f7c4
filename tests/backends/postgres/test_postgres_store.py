"""PostgreSQL-only behaviour: URL, opens racing under the advisory lock, NUL bytes, recovery.

Needs the server of SLIPSTREAM_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
without it these tests skip, or fail when SLIPSTREAM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from slipstream.datasets import Dataset
from slipstream.errors import (
    BackendUnavailable,
    ConfigError,
    TerminalStoreError,
)
from slipstream.events import EventRows, Rejected
from slipstream.stores import ListQuery, StoreSettings, create_store
from slipstream.stores.postgres import PostgresStore
from tests import helpers
from tests.backends.rows import T0, event, rows_of
from tests.contracts.backends import POSTGRES_URL
from tests.services import free_port, port_open, service_missing


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema name; the schema is dropped after the test."""
    server = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
    if not port_open(str(server.get("host", "127.0.0.1")), int(server.get("port") or 5432)):
        service_missing("postgres", f"nothing answers at {POSTGRES_URL}")
    name = f"u_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def open_store(schema: str, *, extra: str = "", **values: object) -> PostgresStore:
    url = f"{POSTGRES_URL}?schema={schema}&pool_min=1{extra}"
    return PostgresStore.from_url(url, StoreSettings.of(helpers.settings(store_url=url, **values)))


@pytest.fixture
async def store(schema: str, flights: Dataset) -> AsyncIterator[PostgresStore]:
    instance = open_store(schema)
    await instance.open([flights])
    yield instance
    await instance.close()


def replaced(rows: EventRows, column: str, value: Any) -> EventRows:
    index = rows.columns.index(column)
    return EventRows(rows.columns, [(*r[:index], value, *r[index + 1 :]) for r in rows.rows])


# --- URL ------------------------------------------------------------------------------------


def test_url_parameters() -> None:
    url = (
        "postgres://app:secret@db.internal:6432/events?schema=analytics&sslmode=require&pool_max=4"
    )

    store = create_store(helpers.settings(store_url=url))

    assert isinstance(store, PostgresStore)
    assert store.schema == "analytics"
    assert store._pool_max == 4
    params = psycopg.conninfo.conninfo_to_dict(store.conninfo)
    assert params["sslmode"] == "require"
    assert params["dbname"] == "events"
    assert "schema" not in params
    assert "secret" not in store.where


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?schema=Bad-Name",
        "postgresql://u@h/db?drop_schema_on_close=true",
        "postgresql://u@h/db?pool_max=many",
    ],
)
def test_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        create_store(helpers.settings(store_url=url))


async def test_unreachable_server_fails_fast(flights: Dataset) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?pool_timeout=1"
    store = PostgresStore.from_url(url, StoreSettings.of(helpers.settings(store_url=url)))

    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:\d+/test.*refused"):
        await asyncio.wait_for(store.open([flights]), timeout=10)
    with pytest.raises(BackendUnavailable):
        await store.ping()
    await store.close()


# --- migrations -----------------------------------------------------------------------------


async def test_stores_opening_together_all_succeed(schema: str, flights: Dataset) -> None:
    # Without the advisory lock, CREATE SCHEMA / CREATE TABLE race and one open fails.
    stores = [open_store(schema) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open([flights]) for s in stores))
        results = await asyncio.gather(
            *(
                s.write(flights, rows_of(flights, event(1), event(n + 2)), [])
                for n, s in enumerate(stores)
            )
        )
    finally:
        await asyncio.gather(*(s.close() for s in stores))

    assert sum(r.inserted for r in results) == 5


async def test_missing_schema_without_create_resources(schema: str, flights: Dataset) -> None:
    store = open_store(schema, create_resources=False)
    try:
        with pytest.raises(ConfigError, match="SLIPSTREAM_CREATE_RESOURCES"):
            await store.open([flights])
    finally:
        await store.close()


async def test_table_partitioned_by_hand_is_used(schema: str, flights: Dataset) -> None:
    # The adoption path of docs/backends/postgresql.md: made before the first start.
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        ddl: list[LiteralString] = [
            "CREATE SCHEMA {s}",
            "CREATE TABLE {t} (id text, flight_id text, status text, event_time timestamptz, "
            "origin text, destination text, delay_minutes bigint, gate text, aircraft text, "
            "extra jsonb, _received_at timestamptz, _stored_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (id, event_time)) PARTITION BY RANGE (event_time)",
            "CREATE TABLE {p} PARTITION OF {t} FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')",
            "CREATE TABLE {d} PARTITION OF {t} DEFAULT",
        ]
        for statement in ddl:
            conn.execute(
                sql.SQL(statement).format(
                    s=sql.Identifier(schema),
                    t=sql.Identifier(schema, "flights"),
                    p=sql.Identifier(schema, "flights_2026_03"),
                    d=sql.Identifier(schema, "flights_default"),
                )
            )
    store = open_store(schema)
    await store.open([flights])
    try:
        rows = rows_of(flights, event(1), event(2, event_time="2027-01-01T00:00:00Z"), event(1))
        first = await store.write(flights, rows, [])
        again = await store.write(flights, rows, [])
        listed = await store.list(flights, ListQuery())
        got = await store.get(flights, "ev-1")
        expired = await store.expire(flights, datetime(2026, 12, 1, tzinfo=UTC))
        # Dropping a partition (pg_partman's retention) fires no trigger: such a table keeps no
        # maintained counts, and the overview counts its rows.
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "flights_default")))
        summary = await store.summary(flights)
    finally:
        await store.close()

    assert summary.rows == 0
    assert (first.inserted, again.inserted) == (2, 0)
    assert [row["id"] for row in listed] == ["ev-2", "ev-1"]
    assert got is not None
    assert expired == 1


# --- writes ---------------------------------------------------------------------------------


async def test_a_nul_in_text_is_terminal(store: PostgresStore, flights: Dataset) -> None:
    good = rows_of(flights, event(1))

    with pytest.raises(TerminalStoreError, match=r"flights.*0x00"):
        await store.write(flights, replaced(good, "gate", "A\x001"), [])

    assert (await store.write(flights, good, [])).inserted == 1


async def test_quarantined_raw_with_nul_is_kept(store: PostgresStore, flights: Dataset) -> None:
    rejected = [Rejected("q-1", "not valid JSON", b"{\x00\xff", T0)]

    assert (
        await store.write(flights, EventRows(rows_of(flights).columns), rejected)
    ).quarantined == 1

    [kept] = await store.quarantined_by_id(flights, ["q-1"], 10)
    assert kept.raw == "{\ufffd\ufffd"


async def test_overlapping_batches_written_together(store: PostgresStore, flights: Dataset) -> None:
    # Same keys in opposite orders: sorted inserts wait for each other instead of deadlocking.
    events = [event(i) for i in range(300)]
    forward = rows_of(flights, *events)
    backward = rows_of(flights, *reversed(events))

    results = await asyncio.gather(
        *(store.write(flights, rows, []) for rows in (forward, backward) * 3)
    )

    assert sum(r.inserted for r in results) == 300
    assert len(await store.list(flights, ListQuery(limit=1000))) == 300


# --- connections ----------------------------------------------------------------------------


async def terminate(application_name: str) -> int:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            [application_name],
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def test_terminated_connections_recover(schema: str, flights: Dataset) -> None:
    name = f"slipstream-test-{schema}"
    store = open_store(schema, extra=f"&application_name={name}&pool_min=3")
    await store.open([flights])
    try:
        await store.write(flights, rows_of(flights, event(1)), [])
        assert await terminate(name) >= 1

        # The first call meets a dead connection; the pool is checked and the call runs again.
        got = await asyncio.wait_for(store.get(flights, "ev-1"), timeout=15)
        assert got is not None
        assert await terminate(name) >= 1
        written = await asyncio.wait_for(
            store.write(flights, rows_of(flights, event(2)), []), timeout=15
        )
        assert written.inserted == 1
        await asyncio.wait_for(store.ping(), timeout=15)
    finally:
        await store.close()
