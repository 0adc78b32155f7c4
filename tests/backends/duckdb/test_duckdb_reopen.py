"""After a fatal error DuckDB invalidates its database; the store reopens it by itself.

DuckDB's own test switch `debug_checkpoint_abort` makes a checkpoint fail the way one does on a
full disk, which invalidates the database: every later statement fails until it is reopened. It
is run on a second connection to the store's database (DuckDB shares one database per file within
a process), closed at once so that only the store holds the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest

from slipstream.datasets import Dataset
from slipstream.errors import BackendUnavailable
from slipstream.events import EventCodec, EventRows
from slipstream.stores import ListQuery, StatsQuery, StoreSettings
from slipstream.stores.duckdb import DuckDBStore
from slipstream.stores.duckdb_database import is_invalidated
from tests import helpers
from tests.helpers import eventually

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows_of(dataset: Dataset, *ids: int) -> EventRows:
    events = [
        {
            "id": f"ev-{i}",
            "flight_id": f"LA{i}",
            "status": "landed",
            "event_time": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i in ids
    ]
    rows, rejected = EventCodec(dataset).decode([(e["id"], orjson.dumps(e), T0) for e in events])
    assert not rejected
    return rows


@pytest.fixture
async def store(tmp_path: Path, flights: Dataset) -> AsyncIterator[DuckDBStore]:
    instance = DuckDBStore.from_url(
        f"duckdb:///{tmp_path / 'warehouse.duckdb'}?threads=1", StoreSettings.of(helpers.settings())
    )
    await instance.open([flights])
    yield instance
    await instance.close()


def invalidate(store: DuckDBStore) -> None:
    """Make a checkpoint of the store's database fail fatally, as on a full disk."""
    with duckdb.connect(store.path, config={"threads": "1"}) as conn:
        conn.execute("PRAGMA debug_checkpoint_abort='before_header'")
        with pytest.raises(duckdb.FatalException, match="Checkpoint aborted"):
            conn.execute("CHECKPOINT")


async def test_a_fatal_error_reopens_the_database_and_keeps_its_rows(
    store: DuckDBStore, flights: Dataset
) -> None:
    await store.write(flights, rows_of(flights, 1, 2), [])
    invalidate(store)
    with pytest.raises(BackendUnavailable, match="invalidated"):
        await store.list(flights, ListQuery())

    async def listed() -> list[str] | None:
        try:
            return [row["id"] for row in await store.list(flights, ListQuery())]
        except BackendUnavailable:
            return None

    # Nothing but the failure asks for the reopen: no ping, no restart.
    assert await eventually(listed, what="reads to answer again") == ["ev-2", "ev-1"]
    await store.ping()
    assert (await store.get(flights, "ev-1")) is not None  # the lookup thread's cursor too
    assert (await store.write(flights, rows_of(flights, 2, 3), [])).inserted == 1
    assert [r["count"] for r in await store.stats(flights, StatsQuery())] == [3]
    assert (await store.summary(flights)).rows == 3


async def test_a_write_after_a_fatal_error_reopens_the_database_first(
    store: DuckDBStore, flights: Dataset
) -> None:
    """Never a TerminalStoreError: an invalidated database says nothing about the rows, and a
    terminal error would dead-letter good events."""
    invalidate(store)
    assert (await store.write(flights, rows_of(flights, 1), [])).inserted == 1
    assert (await store.get(flights, "ev-1")) is not None


def test_what_counts_as_an_invalidated_database() -> None:
    assert is_invalidated(duckdb.FatalException("FATAL Error: Failed to create checkpoint"))
    assert is_invalidated(
        duckdb.InvalidInputException("Invalid Input Error: database has been invalidated")
    )
    assert is_invalidated(duckdb.ConnectionException("Connection already closed!"))
    assert not is_invalidated(duckdb.InvalidInputException("Invalid Input Error: bad value"))
    assert not is_invalidated(duckdb.TransactionException("Failed to commit: disk full"))
