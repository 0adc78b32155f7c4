"""Answers to repeated reads, kept while nothing is written, for a store that sees every write.

DuckDB's file belongs to one process, so every commit to a dataset goes through this process's
store, which moves the dataset's version (`changed`) once the commit is done. An answer is kept
with the version it was read at and served again only while the version is the same, so it is
never stale: partners polling "the newest 50" get the answer the database would give, without
a scan per poll. Identical reads in flight share one query, so a poll burst after a write costs
one read, not one per connection. Bounded in answers and in rows per answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
Rows = list[Any]  # rows, or what a store made of them: shared by every caller, never changed
MAX_ANSWERS = 256
MAX_ROWS = 1000  # a larger answer is read each time: it would crowd out many small ones


class Answers:
    def __init__(self, max_answers: int = MAX_ANSWERS, max_rows: int = MAX_ROWS) -> None:
        self.max_answers = max_answers
        self.max_rows = max_rows
        # Moved only on the writer thread, read on the event loop: a read that starts before a
        # commit is kept under the version before it, which the commit has already left behind.
        self._versions: Counter[str] = Counter()
        self._kept: OrderedDict[Hashable, tuple[int, Rows]] = OrderedDict()
        self._reading: dict[Hashable, tuple[int, asyncio.Future[Rows]]] = {}

    def changed(self, dataset: str) -> None:
        """A commit changed `dataset`: every answer about it read before now is old."""
        self._versions[dataset] += 1

    async def read(self, dataset: str, key: Hashable, query: Callable[[], Awaitable[Rows]]) -> Rows:
        """The answer to `key` (the statement and its parameters) as of now: kept, being read
        by another caller, or read by `query`."""
        version = self._versions[dataset]
        whole = (dataset, key)
        kept = self._kept.get(whole)
        if kept is not None and kept[0] == version:
            self._kept.move_to_end(whole)
            return kept[1]
        reading = self._reading.get(whole)
        if reading is None or reading[0] != version:
            future = asyncio.ensure_future(query())
            reading = self._reading[whole] = (version, future)
            future.add_done_callback(lambda done: self._done(whole, version, done))
        # Shielded: one caller going away (a client hanging up) leaves the read to the others.
        return await asyncio.shield(reading[1])

    def _done(
        self, whole: tuple[str, Hashable], version: int, future: asyncio.Future[Rows]
    ) -> None:
        if self._reading.get(whole, (None,))[0] == version:
            del self._reading[whole]
        if future.cancelled() or future.exception() is not None:
            return
        rows = future.result()
        if self.max_answers <= 0 or len(rows) > self.max_rows:
            return
        if self._versions[whole[0]] == version:  # not already old
            self._kept[whole] = (version, rows)
            self._kept.move_to_end(whole)
            while len(self._kept) > self.max_answers:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)


def answer_key(sql: str, params: dict[str, Any]) -> Hashable | None:
    """A key for a statement and its parameters; None when a parameter cannot be one (a list)."""
    key = (sql, tuple(sorted(params.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


async def kept(
    answers: Answers,
    dataset: str,
    what: str,
    sql: str,
    params: dict[str, Any],
    fetch: Callable[[], Awaitable[list[Any]]],
    shape: Callable[[Any], T],
) -> list[T]:
    """The rows `fetch` reads for `sql` and `params`, each made into `what` the caller answers by
    `shape`, kept by `answers` while `dataset` is not written: a poll repeated between writes
    costs neither the query nor the making of its rows (times, JSON)."""

    async def made() -> list[T]:
        return [shape(row) for row in await fetch()]

    key = answer_key(sql, params)
    return await (made() if key is None else answers.read(dataset, (what, key), made))
