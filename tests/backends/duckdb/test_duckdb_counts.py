"""The DuckDB store's in-memory counts (stores/duckdb_counts.py): the overview reads them instead
of the table, so each answer must equal what the table says — after writes, repeated keys (also
with another event time), hidden keys, quarantine, retention, released quarantine and a reopen.
"""

from __future__ import annotations

from datetime import timedelta

from slipstream.datasets import Dataset
from slipstream.events import HIDDEN_KEY_PREFIX, Rejected
from slipstream.stores import DatasetSummary, summary_of
from slipstream.stores.dialects import DUCKDB
from slipstream.stores.duckdb import DuckDBStore
from slipstream.stores.reads import Reads
from tests.backends.duckdb.test_duckdb_store import open_store, store, url
from tests.backends.rows import T0, event, rows_of

__all__ = ["store", "url"]  # fixtures, shared with the store's other tests

HIDDEN = HIDDEN_KEY_PREFIX


async def from_table(store: DuckDBStore, dataset: Dataset, prefix: str | None) -> DatasetSummary:
    """The overview as the table's own query answers it, bypassing the counts."""
    bound = Reads(DUCKDB, dataset, ()).summary(prefix)
    rows = await store._fetch(bound)
    return summary_of(*rows[0])


async def assert_counts_true(store: DuckDBStore, dataset: Dataset) -> None:
    for prefix in (None, HIDDEN):
        counted = await store.summary(dataset, exclude_key_prefix=prefix)
        assert counted == await from_table(store, dataset, prefix), prefix


async def test_counts_follow_every_change_of_the_rows(store: DuckDBStore, flights: Dataset) -> None:
    await assert_counts_true(store, flights)  # taken from the empty table
    await store.write(flights, rows_of(flights, event(1), event(2)), [])
    await assert_counts_true(store, flights)
    probe = event(50, id=f"{HIDDEN}1", event_time=(T0 + timedelta(days=3)).isoformat())
    await store.write(flights, rows_of(flights, event(3), probe), [])  # a batch with a hidden key
    await assert_counts_true(store, flights)
    assert (await store.summary(flights, exclude_key_prefix=HIDDEN)).rows == 3
    rejected = Rejected("bad-1", "schema: …", b"{}", T0)
    await store.write(flights, rows_of(flights, event(4)), [rejected])
    await assert_counts_true(store, flights)
    assert (await store.summary(flights)).quarantined == 1

    assert await store.expire(flights, T0 + timedelta(minutes=2)) == 1
    assert await store.release_quarantined(flights, ["bad-1"]) == 1
    await assert_counts_true(store, flights)
    assert (await store.summary(flights, exclude_key_prefix=HIDDEN)).rows == 3


async def test_a_repeated_key_with_another_time_leaves_the_newest_time_true(
    store: DuckDBStore, flights: Dataset
) -> None:
    await store.write(flights, rows_of(flights, event(1), event(2)), [])
    await store.summary(flights)  # the counts are taken
    # ev-2 again, an hour later: the stored row keeps its time, so the newest stays ev-3's.
    later = event(2, event_time=(T0 + timedelta(hours=1)).isoformat())
    await store.write(flights, rows_of(flights, later, event(3)), [])
    summary = await store.summary(flights, exclude_key_prefix=HIDDEN)
    assert summary.rows == 3
    assert summary.newest_event_time == T0 + timedelta(minutes=3)
    await assert_counts_true(store, flights)


async def test_counts_are_taken_again_after_a_reopen(url: str, flights: Dataset) -> None:
    first = open_store(url)
    await first.open([flights])
    await first.write(flights, rows_of(flights, event(1), event(2, id=f"{HIDDEN}2")), [])
    await first.close()
    again = open_store(url)
    await again.open([flights])
    try:
        await again.write(flights, rows_of(flights, event(3)), [])
        await assert_counts_true(again, flights)
        assert (await again.summary(flights, exclude_key_prefix=HIDDEN)).rows == 2
        assert (await again.summary(flights, exclude_key_prefix="ev-")).rows == 1  # not counted
    finally:
        await again.close()
