"""PostgreSQL's maintained counts (stores/postgres_counts.py): the overview reads them instead of
counting rows, so they must equal a real count after anything that changes the rows — the
store's writes, retention, writers that know nothing of them, concurrent writers, a table that
existed before them — and a store that may not create them still answers right.

Needs the server of SLIPSTREAM_TEST_POSTGRES_URL; see test_postgres_store.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from slipstream.datasets import Dataset
from slipstream.events import HIDDEN_KEY_PREFIX, Rejected
from slipstream.stores import DatasetSummary
from slipstream.stores.postgres import PostgresStore
from tests.backends.postgres.test_postgres_store import open_store, schema, store
from tests.backends.rows import T0, event, rows_of
from tests.contracts.backends import POSTGRES_URL

__all__ = ["schema", "store"]  # fixtures, shared with the store's other tests
HIDDEN = HIDDEN_KEY_PREFIX


def counted(schema: str, dataset: Dataset, where: str = "true") -> int:
    with psycopg.connect(POSTGRES_URL) as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(
            sql.Identifier(schema, dataset.name)
        )
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


async def assert_counts_true(store: PostgresStore, schema: str, dataset: Dataset) -> None:
    """The maintained counts against a count of the rows, with and without the hidden keys."""
    shown = await store.summary(dataset, exclude_key_prefix=HIDDEN)
    every = await store.summary(dataset)
    assert every.rows == counted(schema, dataset)
    assert shown.rows == counted(schema, dataset, f"NOT starts_with(id, '{HIDDEN}')")
    with psycopg.connect(POSTGRES_URL) as conn:
        table = sql.Identifier(schema, f"{dataset.name}__quarantine")
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    assert row is not None
    assert every.quarantined == shown.quarantined == row[0]


def execute(schema: str, statement: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))


async def test_counts_follow_writes_duplicates_hidden_keys_quarantine_and_retention(
    store: PostgresStore, schema: str, flights: Dataset
) -> None:
    assert (await store.summary(flights)).rows == 0
    probe = event(9, id=f"{HIDDEN}1", event_time=(T0 + timedelta(days=2)).isoformat())
    await store.write(flights, rows_of(flights, event(1), event(2), probe), [])
    rejected = Rejected("bad-1", "schema: status is not one of …", b"{}", T0)
    result = await store.write(flights, rows_of(flights, event(2), event(3)), [rejected])
    assert (result.inserted, result.quarantined) == (1, 1)  # ev-2 was there already
    await assert_counts_true(store, schema, flights)
    shown = await store.summary(flights, exclude_key_prefix=HIDDEN)
    every = await store.summary(flights)
    assert (shown.rows, every.rows, shown.quarantined) == (3, 4, 1)
    # The newest event time of the shown rows leaves the hidden one out; the last write is the
    # time the rows were stored.
    assert shown.newest_event_time == T0 + timedelta(minutes=3)
    assert isinstance(shown.last_stored_at, datetime)
    assert every.last_stored_at is not None
    assert every.last_stored_at >= shown.last_stored_at

    assert await store.expire(flights, T0 + timedelta(minutes=2)) == 1  # ev-1
    assert await store.release_quarantined(flights, ["bad-1"]) == 1
    await assert_counts_true(store, schema, flights)
    assert (await store.summary(flights, exclude_key_prefix=HIDDEN)).rows == 2


async def test_writers_that_know_nothing_of_the_counts_are_counted(
    store: PostgresStore, schema: str, flights: Dataset
) -> None:
    """An older worker during a rolling upgrade, an operator in psql: triggers count them."""
    await store.write(flights, rows_of(flights, event(1), event(2)), [])
    execute(
        schema,
        "INSERT INTO {schema}.flights (id, flight_id, status, event_time) "
        f"VALUES ('by-hand', 'LA1', 'landed', now()), ('{HIDDEN}x', 'LA1', 'landed', now())",
    )
    execute(schema, "DELETE FROM {schema}.flights WHERE id = 'ev-1'")
    await assert_counts_true(store, schema, flights)
    execute(schema, "TRUNCATE {schema}.flights, {schema}.flights__quarantine")
    await assert_counts_true(store, schema, flights)
    assert (await store.summary(flights)).rows == 0


async def test_concurrent_writers_leave_exact_counts(schema: str, flights: Dataset) -> None:
    stores = [open_store(schema), open_store(schema)]
    for each in stores:
        await each.open([flights])
    try:
        batches = [
            rows_of(flights, *(event(n * 100 + i) for i in range(50)), event(7))  # ev-7 in all
            for n in range(1, 21)
        ]
        await asyncio.gather(
            *(stores[n % 2].write(flights, rows, []) for n, rows in enumerate(batches))
        )
        await assert_counts_true(stores[0], schema, flights)
        assert (await stores[1].summary(flights)).rows == 20 * 50 + 1
    finally:
        for each in stores:
            await each.close()


async def test_a_table_from_before_the_counts_is_counted_once_at_open(
    store: PostgresStore, schema: str, flights: Dataset
) -> None:
    await store.write(flights, rows_of(flights, event(1), event(2), event(3, id=f"{HIDDEN}3")), [])
    await store.close()
    execute(schema, "DROP TABLE {schema}.flights__counts")
    execute(schema, "DROP TRIGGER slipstream_counts_insert ON {schema}.flights")
    reopened = open_store(schema)
    await reopened.open([flights])
    try:
        await reopened.write(flights, rows_of(flights, event(4)), [])
        await assert_counts_true(reopened, schema, flights)
        assert (await reopened.summary(flights, exclude_key_prefix=HIDDEN)).rows == 3
    finally:
        await reopened.close()


async def test_another_prefix_or_no_counts_table_still_answers_by_counting(
    store: PostgresStore, schema: str, flights: Dataset
) -> None:
    await store.write(flights, rows_of(flights, event(1), event(2, id="other-2")), [])
    assert (await store.summary(flights, exclude_key_prefix="other-")).rows == 1
    execute(schema, "DROP TABLE {schema}.flights__counts CASCADE")
    assert (await store.summary(flights)).rows == 2  # the counts row is gone: counted instead
    await store.write(flights, rows_of(flights, event(5)), [])  # the triggers let writes be
    assert (await store.summary(flights)).rows == 3
    await store.close()
    reopened = open_store(schema)  # made again, and counted, at the next start
    await reopened.open([flights])
    await assert_counts_true(reopened, schema, flights)
    await reopened.close()
    # A store that may not create resources finds no counts table: it counts, and writes work.
    plain = open_store(schema, create_resources=False)
    execute(schema, "DROP FUNCTION {schema}.flights__count_rows CASCADE")
    await plain.open([flights])
    try:
        await plain.write(flights, rows_of(flights, event(3)), [])
        summary = await plain.summary(flights, exclude_key_prefix=HIDDEN)
        assert summary == DatasetSummary(4, 0, summary.newest_event_time, summary.last_stored_at)
    finally:
        await plain.close()
