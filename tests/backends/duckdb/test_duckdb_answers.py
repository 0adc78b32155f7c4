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
from slipstream.stores.duckdb import DuckDBStore
from slipstream.stores.reads import Bound
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
    first = await store.list(flights, NEWEST)
    assert await store.list(flights, NEWEST) == first
    assert await store.stats(flights, BY_HOUR) == await store.stats(flights, BY_HOUR)
    assert reads.count == 2  # one list, one stats

    await store.write(flights, rows_of(flights, event(3)), [])
    assert [e["id"] for e in await store.list(flights, NEWEST)] == ["ev-3", "ev-2", "ev-1"]
    assert sum(r["count"] for r in await store.stats(flights, BY_HOUR)) == 3
    assert reads.count == 4


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
