"""The `duckdb://` URL: where the file is, and DuckDB settings as query options."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
from pydantic import ConfigDict, Field

from slipstream.config import path_from_url
from slipstream.errors import ConfigError
from slipstream.options import BackendOptions, Passthrough
from slipstream.stores import VARIABLE

MEMORY = ":memory:"


@functools.cache
def setting_names() -> frozenset[str]:
    """Every setting this DuckDB knows (it takes their names in any case)."""
    with duckdb.connect(MEMORY) as conn:
        names = [
            str(row[0]) for row in conn.execute("SELECT name FROM duckdb_settings()").fetchall()
        ]
    return frozenset(names + [name.lower() for name in names])


class DuckDBOptions(BackendOptions):
    """`duckdb:///path?threads=2&memory_limit=2GB`: any DuckDB setting, by its name."""

    model_config = ConfigDict(extra="allow")
    passthrough = Passthrough(
        "DuckDB setting", setting_names, "memory_limit, temp_directory, preserve_insertion_order"
    )
    # DuckDB defaults to a thread per core; leave one core to the API's event loop, which
    # shares this process (GET-by-id p99 fell by a third on 2 cores).
    threads: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1)

    def config(self) -> dict[str, Any]:
        """What `duckdb.connect(config=…)` takes."""
        return {"threads": self.threads, **self.driver_options()}


def parse_url(url: str) -> tuple[str, DuckDBOptions]:
    """`duckdb:///./data/warehouse.duckdb` (relative), `duckdb:////abs/path`, or
    `duckdb:///:memory:` (tests; gone when closed) → (path, options). The file's directory is
    made when missing."""
    options = DuckDBOptions.from_url(url, VARIABLE)
    if urlsplit(url).path in (f"/{MEMORY}", MEMORY):
        return MEMORY, options
    try:
        path: Path = path_from_url(url.split("?", 1)[0])
    except ConfigError as exc:
        raise ConfigError(f"{VARIABLE}={exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path), options
