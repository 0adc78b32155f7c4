from __future__ import annotations

import pytest

from slipstream.api.cache import ReadCache


def test_least_recently_used_entries_leave_first() -> None:
    cache = ReadCache(max_entries=2)
    cache.put("flights", "a", b"A")
    cache.put("flights", "b", b"B")
    assert cache.get("flights", "a") == b"A"  # a is now the most recent
    cache.put("flights", "c", b"C")
    assert cache.get("flights", "b") is None
    assert cache.get("flights", "a") == b"A"
    assert cache.get("other", "a") is None


def test_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("slipstream.api.cache.time.monotonic", lambda: now[0])
    cache = ReadCache(max_entries=10, ttl=5)
    cache.put("flights", "a", b"A")
    now[0] += 4
    assert cache.get("flights", "a") == b"A"
    now[0] += 2
    assert cache.get("flights", "a") is None
    assert len(cache) == 0


def test_size_zero_turns_it_off() -> None:
    cache = ReadCache(max_entries=0)
    cache.put("flights", "a", b"A")
    assert cache.get("flights", "a") is None
