"""DuckDB-only behaviour: paths and settings in the URL, reads beside the writer thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slipstream.datasets import Dataset
from slipstream.stores import ListQuery, StoreSettings
from slipstream.stores.duckdb import DuckDBStore
from tests import helpers
from tests.backends.rows import event, rows_of


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'nested' / 'warehouse.duckdb'}"


def open_store(url: str) -> DuckDBStore:
    return DuckDBStore.from_url(url, StoreSettings.of(helpers.settings()))


@pytest.fixture
async def store(url: str, flights: Dataset) -> AsyncIterator[DuckDBStore]:
    instance = open_store(url)
    await instance.open([flights])
    yield instance
    await instance.close()


async def test_url_makes_parent_directories(url: str, tmp_path: Path, flights: Dataset) -> None:
    store = open_store(url)
    await store.open([flights])
    await store.close()

    assert (tmp_path / "nested" / "warehouse.duckdb").is_file()


async def test_memory_url(flights: Dataset) -> None:
    store = open_store("duckdb:///:memory:")
    await store.open([flights])
    try:
        assert (await store.write(flights, rows_of(flights, event(1)), [])).inserted == 1
        assert await store.get(flights, "ev-1") is not None
    finally:
        await store.close()


async def test_reads_do_not_wait_for_the_writer(store: DuckDBStore, flights: Dataset) -> None:
    await store.write(flights, rows_of(flights, event(1)), [])
    gate = threading.Event()
    # Hold the writer thread, queue a write behind it, then read.
    blocker = asyncio.get_running_loop().run_in_executor(store._writer_pool, gate.wait, 30)
    pending = asyncio.ensure_future(store.write(flights, rows_of(flights, event(2)), []))
    try:
        got = await asyncio.wait_for(store.get(flights, "ev-1"), timeout=10)
        listed = await asyncio.wait_for(store.list(flights, ListQuery()), timeout=10)
        assert not pending.done()
    finally:
        gate.set()
    await blocker

    assert got is not None
    assert [row["id"] for row in listed] == ["ev-1"]
    assert (await pending).inserted == 1


def test_url_query_parameters_are_duckdb_settings(tmp_path: Path) -> None:
    settings = StoreSettings.of(helpers.settings())
    store = DuckDBStore.from_url(
        f"duckdb:///{tmp_path / 'w.duckdb'}?threads=1&memory_limit=256MB", settings
    )
    assert store.path == str(tmp_path / "w.duckdb")
    assert store._config == {"threads": 1, "memory_limit": "256MB"}
    default = DuckDBStore.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}", settings)
    assert default._config["threads"] >= 1


async def test_a_cursor_comes_back_with_no_result_pending(
    store: DuckDBStore, flights: Dataset
) -> None:
    """A read that stops at its first row (the ping's `fetchone`) leaves a result pending on its
    cursor, which DuckDB holds against the next read's `sql()`: cursors are lent clean."""
    from tests.backends.rows import event, rows_of

    await store.write(flights, rows_of(flights, *(event(i) for i in range(3))), [])
    for _ in range(8):  # every cursor of the pool, whichever comes next
        await store.ping()
        table = await store.list_arrow(flights, ListQuery(limit=10))
        assert table.num_rows == 3
