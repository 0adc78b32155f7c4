"""Every backend the contract suites run over: one entry per backend.

SLIPSTREAM_TEST_BACKENDS=local,duckdb (comma separated names) narrows the run; by default every
backend whose service is reachable runs. Each factory gets a unique name and a temp directory, so
tests never share a topic, queue or table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slipstream.config import Settings


@dataclass(frozen=True)
class Backend:
    name: str
    # Given a temp dir and a unique token, the settings that point at a fresh instance.
    settings: Callable[[Path, str], Settings]
    # Returns None when usable, else why not (the test then skips, or fails in CI).
    unavailable: Callable[[], str | None] = lambda: None


def _settings(tmp: Path, **values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


BROKER_BACKENDS = [
    Backend(
        "local",
        lambda tmp, token: _settings(
            tmp, broker_url=f"local:///{tmp / 'queue.db'}", lease_seconds=1, max_deliveries=3
        ),
    ),
]

STORE_BACKENDS = [
    Backend(
        "duckdb",
        lambda tmp, token: _settings(tmp, store_url=f"duckdb:///{tmp / 'warehouse.duckdb'}"),
    ),
]


def selected(backends: list[Backend]) -> list[Backend]:
    wanted = os.environ.get("SLIPSTREAM_TEST_BACKENDS")
    if not wanted:
        return backends
    names = {n.strip() for n in wanted.split(",")}
    return [b for b in backends if b.name in names]
