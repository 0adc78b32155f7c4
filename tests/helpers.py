"""Polling with a deadline: the only way tests wait for something."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import orjson

from slipstream.config import Settings

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | Literal[False] | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `check` until it returns something truthy (and return that, so never None or False);
    fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
        last = check()
    return last


async def eventually(
    check: Callable[[], Awaitable[T | Literal[False] | None]],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last = await check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
        last = await check()
    return last


STATUSES = ("scheduled", "boarding", "departed", "delayed", "cancelled", "landed", "diverted")


def flight_event(n: int, prefix: str = "ev", **overrides: object) -> dict[str, object]:
    """A valid flights event with a unique id and a distinct event time."""
    event: dict[str, object] = {
        "id": f"{prefix}-{n:07d}",
        "flight_id": f"LA{800 + n % 50}-2026-11-24",
        "status": STATUSES[n % len(STATUSES)],
        "event_time": f"2026-11-24T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z",
        "origin": "SCL",
        "destination": "LIM",
        "delay_minutes": n % 90,
        "gate": f"B{n % 30}",
        "aircraft": "A320",
    }
    event.update(overrides)
    return event


def log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    """The JSON log lines written to `stream` (the `captured` fixture)."""
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def settings(**values: Any) -> Settings:
    """Settings of `values` and the environment only: no `.env` or `slipstream.toml` is read."""
    return Settings(_env_file=None, **values)
