from __future__ import annotations

import asyncio

import pytest

from slipstream.stores.coalesce import Coalescer


async def test_concurrent_lookups_share_queries() -> None:
    calls: list[list[str]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def fetch(keys: list[str]) -> dict[str, str]:
        calls.append(keys)
        started.set()
        await release.wait()
        return {k: k.upper() for k in keys if k != "missing"}

    lookups: Coalescer[str, str] = Coalescer(fetch, concurrency=1)
    first = [asyncio.create_task(lookups.get(k)) for k in ["a", "b", "a"]]
    await started.wait()  # the first query is under way
    later = [asyncio.create_task(lookups.get(k)) for k in ["missing", "c", "b"]]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*first, *later) == ["A", "B", "A", None, "C", "B"]
    assert calls == [["a", "b"], ["missing", "c", "b"]]


async def test_a_failed_query_fails_its_waiters_only() -> None:
    async def fetch(keys: list[str]) -> dict[str, str]:
        if "bad" in keys:
            raise RuntimeError("store down")
        return {k: k for k in keys}

    lookups: Coalescer[str, str] = Coalescer(fetch, concurrency=1, max_batch=1)
    bad, good = lookups.get("bad"), lookups.get("good")
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] == "good"


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def fetch(keys: list[str]) -> dict[str, int]:
        sizes.append(len(keys))
        await asyncio.sleep(0)
        return {k: 1 for k in keys}

    lookups: Coalescer[str, int] = Coalescer(fetch, max_batch=10, concurrency=1)
    await asyncio.gather(*(lookups.get(str(i)) for i in range(35)))
    assert max(sizes) <= 10
    assert sum(sizes) == 35


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_every_waiter_is_answered(concurrency: int) -> None:
    async def fetch(keys: list[str]) -> dict[str, str]:
        await asyncio.sleep(0)
        return {k: k for k in keys}

    lookups: Coalescer[str, str] = Coalescer(fetch, concurrency=concurrency)
    keys = [str(i % 17) for i in range(200)]
    assert await asyncio.gather(*(lookups.get(k) for k in keys)) == keys
