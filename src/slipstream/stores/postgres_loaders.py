"""How the PostgreSQL store reads values psycopg would refuse.

PostgreSQL's timestamps run from 4713 BC to 294276 AD and include ±infinity; psycopg refuses, for
the whole result, any that a `datetime` cannot hold. The store reads times as `timestamp` (naive
UTC): this loader keeps psycopg's own for every ordinary value and hands the text of the others
to `values.stored_time`, so one such row cannot fail a page, the stats or the summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.pq import Format

_TIMESTAMP = psycopg.adapters.types["timestamp"].oid


class StoredTimestampLoader(Loader):
    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        fast = psycopg.adapters.get_loader(_TIMESTAMP, Format.TEXT)
        assert fast is not None
        self._fast = fast(oid, context)

    def load(self, data: Buffer) -> datetime | str:
        try:
            stamp: datetime = self._fast.load(data)
        except psycopg.DataError:  # "timestamp too large (after year 10K)" and the like
            return bytes(data).decode()
        return stamp


async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Set on every pooled connection."""
    conn.adapters.register_loader("timestamp", StoredTimestampLoader)
