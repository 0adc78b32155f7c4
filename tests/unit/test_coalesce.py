from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from slipstream.stores.coalesce import Coalescer, LookupsClosed, ThreadCoalescer
from tests.helpers import wait_until


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


class BlockingFetch:
    """A blocking fetch (as a database driver's) that records its calls and can be held."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, group: str, keys: list[str]) -> dict[str, str]:
        self.calls.append((group, keys))
        self.entered.set()
        self.release.wait(timeout=10)
        if group == "broken":
            raise RuntimeError("store down")
        return {k: f"{group}:{k}" for k in keys if k != "missing"}


async def until(check: Callable[[], bool], what: str) -> None:
    """Let the loop run until `check` holds; fail after 10 s."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0)


async def wait_for_thread(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10), "the lookup thread never called fetch"


async def test_thread_lookups_queued_during_a_query_make_the_next_one() -> None:
    fetch = BlockingFetch()
    fetch.release.clear()
    lookups: ThreadCoalescer[str, str, str] = ThreadCoalescer(fetch)
    try:
        first = asyncio.create_task(lookups.get("flights", "a"))
        await wait_for_thread(fetch.entered)  # the first query is under way, held
        later = [
            asyncio.create_task(lookups.get(group, key))
            for group, key in [
                ("flights", "b"),
                ("flights", "b"),
                ("other", "c"),
                ("flights", "missing"),
            ]
        ]
        await until(lambda: lookups.queued == 4, "the four lookups to be queued")
        fetch.release.set()
        assert await asyncio.gather(first, *later) == [
            "flights:a",
            "flights:b",
            "flights:b",
            "other:c",
            None,
        ]
        # One query per group for everything queued meanwhile; a key asked twice, once.
        assert fetch.calls == [
            ("flights", ["a"]),
            ("flights", ["b", "missing"]),
            ("other", ["c"]),
        ]
    finally:
        lookups.close()


async def test_thread_lookups_a_failed_group_fails_its_waiters_only() -> None:
    fetch = BlockingFetch()
    lookups: ThreadCoalescer[str, str, str] = ThreadCoalescer(fetch)
    try:
        results = await asyncio.gather(
            lookups.get("broken", "x"), lookups.get("flights", "y"), return_exceptions=True
        )
        assert isinstance(results[0], RuntimeError)
        assert str(results[0]) == "store down"
        assert results[1] == "flights:y"
        assert await lookups.get("flights", "z") == "flights:z"  # the thread goes on
    finally:
        lookups.close()


async def test_thread_lookups_batches_are_bounded_and_all_answered() -> None:
    fetch = BlockingFetch()
    lookups: ThreadCoalescer[str, str, str] = ThreadCoalescer(fetch, max_batch=10)
    try:
        keys = [str(i) for i in range(95)]
        assert await asyncio.gather(*(lookups.get("g", k) for k in keys)) == [
            f"g:{k}" for k in keys
        ]
        assert max(len(batch) for _, batch in fetch.calls) <= 10
        assert sorted(k for _, batch in fetch.calls for k in batch) == sorted(keys)
    finally:
        lookups.close()


async def test_thread_lookups_after_close_fail_and_earlier_ones_are_answered() -> None:
    fetch = BlockingFetch()
    fetch.release.clear()
    lookups: ThreadCoalescer[str, str, str] = ThreadCoalescer(fetch)
    pending = [asyncio.create_task(lookups.get("g", k)) for k in ("a", "b")]
    await wait_for_thread(fetch.entered)
    closer = threading.Thread(target=lookups.close)  # waits for the held query
    closer.start()
    wait_until(lambda: lookups.closed)
    with pytest.raises(LookupsClosed):
        await lookups.get("g", "late")
    fetch.release.set()
    await asyncio.to_thread(closer.join)
    assert await asyncio.gather(*pending) == ["g:a", "g:b"]
