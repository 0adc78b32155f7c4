"""Lists and stats answered from memory while nothing is written (stores/answers.py): each answer
must be what the table says at the time of the call — after writes, duplicates, retention and
released quarantine — and a burst of identical reads costs one query."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from slipstream.datasets import Dataset
from slipstream.stores import ListQuery, StatsQuery
from slipstream.stores.dialects import DUCKDB
from slipstream.stores.duckdb import DuckDBStore
from slipstream.stores.reads import Bound, Reads
from tests.backends.duckdb.test_duckdb_store import store, url
from tests.backends.rows import T0, event, rows_of

__all__ = ["store", "url"]  # fixtures, shared with the store's other tests

NEWEST = ListQuery(limit=5)
BY_HOUR = StatsQuery(bucket="hour", since=T0 - timedelta(days=1))


class CountedReads:
    """Counts the queries that reach DuckDB."""

    def __init__(self, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        fetch = store._fetch

        async def counted(bound: Bound) -> list[tuple[Any, ...]]:
            self.count += 1
            return await fetch(bound)

        monkeypatch.setattr(store, "_fetch", counted)


async def test_a_repeated_read_is_answered_from_memory_until_a_write(
    store: DuckDBStore, flights: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write(flights, rows_of(flights, event(1), event(2)), [])
    reads = CountedReads(store, monkeypatch)
    first = (await store.list(flights, NEWEST), await store.stats(flights, BY_HOUR))
    queried = reads.count
    assert queried >= 2  # a page not full reads through every window (windows.py)
    assert (await store.list(flights, NEWEST), await store.stats(flights, BY_HOUR)) == first
    assert reads.count == queried

    await store.write(flights, rows_of(flights, event(3)), [])
    assert [e["id"] for e in await store.list(flights, NEWEST)] == ["ev-3", "ev-2", "ev-1"]
    assert sum(r["count"] for r in await store.stats(flights, BY_HOUR)) == 3
    assert reads.count == 2 * queried


async def test_every_change_of_the_rows_is_seen_by_the_next_read(
    store: DuckDBStore, flights: Dataset
) -> None:
    async def ids() -> list[str]:
        return [e["id"] for e in await store.list(flights, NEWEST)]

    await store.write(flights, rows_of(flights, event(1), event(2)), [])
    assert await ids() == ["ev-2", "ev-1"]
    await store.write(flights, rows_of(flights, event(2), event(3)), [])  # one is a duplicate
    assert await ids() == ["ev-3", "ev-2", "ev-1"]
    await store.expire(flights, T0 + timedelta(minutes=2))  # retention takes the oldest
    assert await ids() == ["ev-3", "ev-2"]
    await store.expire(flights, T0 + timedelta(days=1))
    assert await ids() == []


async def test_a_burst_of_identical_reads_costs_one_query(
    store: DuckDBStore, flights: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write(flights, rows_of(flights, *(event(i) for i in range(20))), [])
    reads = CountedReads(store, monkeypatch)
    answers = await asyncio.gather(*(store.list(flights, NEWEST) for _ in range(50)))
    assert all(answer == answers[0] for answer in answers)
    assert len(answers[0]) == 5
    assert reads.count == 1


AGES = [timedelta(minutes=m) for m in (0, 1, 30, 61, 300, 1500, 3000, 60 * 24 * 40, 60 * 24 * 400)]


async def test_pages_read_through_windows_are_the_pages_of_the_whole_table(
    store: DuckDBStore, flights: Dataset
) -> None:
    """Rows spread from now to a year back, read with every limit, with a filter and page by
    page: the same rows, in the same order, as one plain query over the whole table."""
    newest = T0 + timedelta(days=500)
    spread = [
        event(i, event_time=(newest - age).isoformat(), status=("landed", "delayed")[i % 2])
        for i, age in enumerate(AGES)
    ]
    await store.write(flights, rows_of(flights, *spread), [])
    reads = Reads(DUCKDB, flights, ())

    async def plain(query: ListQuery) -> list[str]:
        return [str(reads.event(row)["id"]) for row in await store._fetch(reads.list(query))]

    for limit in range(1, len(AGES) + 2):
        for filters in ({}, {"status": "delayed"}):
            query = ListQuery(limit=limit, filters=filters)
            got = [str(e["id"]) for e in await store.list(flights, query)]
            assert got == await plain(query), (limit, filters)

    seen: list[str] = []
    after = None
    while True:
        page = await store.list(flights, ListQuery(limit=2, after=after))
        seen += [str(e["id"]) for e in page]
        if len(page) < 2:
            break
        after = (page[-1]["event_time"], str(page[-1]["id"]))
    assert seen == await plain(ListQuery(limit=100))
