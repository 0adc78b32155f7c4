"""Concurrent point lookups merged into one query (the DataLoader pattern).

A point query's cost is mostly fixed per statement (parse, plan, thread hop), so fifty lookups
arriving together are far cheaper as one `key IN (…)` query than as fifty. The first lookup runs
at once; those that arrive while queries are in flight wait for the next one. No timer is involved,
so a lone request pays nothing extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

G = TypeVar("G", bound=Hashable)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[dict[K, V]]],
        *,
        max_batch: int = 256,
        concurrency: int = 1,
    ) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._running = 0

    async def get(self, key: K) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._running < self._concurrency:
            self._running += 1
            asyncio.create_task(self._drain())  # noqa: RUF006 - it resolves the futures it takes
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self._max_batch]
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._fetch(keys)
                except Exception as exc:  # every waiter gets the failure, none hangs
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    value = found.get(key)
                    for future in futures:
                        if not future.done():
                            future.set_result(value)
        finally:
            self._running -= 1


class LookupsClosed(RuntimeError):
    """A lookup asked of a ThreadCoalescer after its close()."""


class ThreadCoalescer(Generic[G, K, V]):
    """The same merging for a blocking lookup (an embedded database), run on a thread of its own.

    The thread takes every lookup queued so far, runs one fetch per group (a dataset) and hands
    the answers back to the event loop in one callback, then starts again at once with what
    arrived meanwhile. The loop never has to schedule the next query, so on a busy server the
    queries follow each other without waiting for the loop's turn, and batches grow with load.
    """

    def __init__(
        self,
        fetch: Callable[[G, list[K]], dict[K, V]],
        *,
        max_batch: int = 256,
        name: str = "lookups",
    ) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Lookup[G, K, V] | None] = queue.SimpleQueue()
        # Held while queueing and while closing, so no lookup is queued behind the stop mark
        # (it would never be answered).
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def get(self, group: G, key: K) -> V | None:
        """The value of `key` in `group` (None: not found); LookupsClosed once closed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        with self._lock:
            if self._closed:
                raise LookupsClosed("lookups are closed")
            self._queue.put(_Lookup(group, key, future, loop))
        return await future

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        """Lookups waiting for the thread to take them (approximate, as the queue's size is)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the thread once the lookups queued before this call are answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    lookup = self._queue.get_nowait()
                except queue.Empty:
                    break
                if lookup is None:
                    stop = True
                    break
                batch.append(lookup)
            self._answer(batch)
            if stop:
                return

    def _answer(self, batch: list[_Lookup[G, K, V]]) -> None:
        groups: dict[G, dict[K, None]] = {}  # a dict keeps each key once, in order
        for lookup in batch:
            groups.setdefault(lookup.group, {})[lookup.key] = None
        found: dict[G, dict[K, V]] = {}
        failed: dict[G, Exception] = {}
        for group, keys in groups.items():
            try:
                found[group] = self._fetch(group, list(keys))
            except Exception as exc:  # every waiter of the group gets the failure, none hangs
                failed[group] = exc
        loops: dict[asyncio.AbstractEventLoop, list[_Lookup[G, K, V]]] = {}
        for lookup in batch:
            loops.setdefault(lookup.loop, []).append(lookup)
        for loop, lookups in loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, lookups, found, failed)


class _Lookup(NamedTuple, Generic[G, K, V]):
    group: G
    key: K
    future: asyncio.Future[V | None]
    loop: asyncio.AbstractEventLoop


def _settle(
    lookups: list[_Lookup[G, K, V]], found: dict[G, dict[K, V]], failed: dict[G, Exception]
) -> None:
    for lookup in lookups:
        if lookup.future.done():  # its request was cancelled meanwhile
            continue
        if lookup.group in failed:
            lookup.future.set_exception(failed[lookup.group])
        else:
            lookup.future.set_result(found[lookup.group].get(lookup.key))
