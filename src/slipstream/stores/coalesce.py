"""Concurrent point lookups merged into one query (the DataLoader pattern).

A point query's cost is mostly fixed per statement (parse, plan, thread hop), so fifty lookups
arriving together are far cheaper as one `key IN (…)` query than as fifty. The first lookup runs
at once; those that arrive while queries are in flight wait for the next one. No timer is involved,
so a lone request pays nothing extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

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
