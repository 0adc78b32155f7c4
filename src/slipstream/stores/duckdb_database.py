"""One DuckDB database file: the writer's connection and the cursors readers borrow, reopened
after a fatal error.

DuckDB invalidates a database after a fatal error (a checkpoint that could not write, on a full
disk): from then on every statement fails ("database has been invalidated") until the connection
and all of its cursors are closed and the file opened again. So any call that sees such an error
marks the database down with the reason; readers then fail at once with it, and the writer thread
reopens the file, at once and then with a growing pause while that fails. Committed data is in the
file and its WAL, so nothing is lost. A reopen waits for borrowed cursors to come back, so a cursor
is never closed under a running query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from slipstream.disk import DiskWatch
from slipstream.errors import BackendUnavailable

log = logging.getLogger("slipstream.store")
Connection = duckdb.DuckDBPyConnection
MEMORY = ":memory:"
REOPEN_FIRST, REOPEN_MAX = 0.25, 5.0  # seconds between reopen attempts: doubling, capped
DRAIN_TIMEOUT = 10.0  # seconds a reopen waits for borrowed cursors to come back


def is_invalidated(exc: BaseException) -> bool:
    """A failure after which the connection is unusable until it is closed and opened again."""
    if isinstance(exc, duckdb.FatalException | duckdb.ConnectionException):
        return True
    return isinstance(exc, duckdb.Error) and "invalidated" in str(exc).lower()


class Database:
    def __init__(self, path: str, config: dict[str, Any], cursors: int) -> None:
        self.path = path
        self.disk = DiskWatch(Path(path)) if path != MEMORY else None
        self._config = config
        self._size = cursors
        self._cond = threading.Condition()
        self._conn: Connection | None = None
        self._idle: list[Connection] = []
        self._lent = 0
        self._down: str | None = "the DuckDB store is not open"
        self._attempts = 0
        self._retry_at = 0.0
        self._closed = False
        self._opened = False  # once open, a failure is followed by reopen attempts

    @property
    def down(self) -> str | None:
        """Why no statement can run now (None when they can)."""
        return self._down

    # --- the writer thread --------------------------------------------------------------------

    def connection(self) -> Connection:
        """The open connection; (re)opened first when down and an attempt is due."""
        if self._down is not None:
            self._reopen()
        assert self._conn is not None
        return self._conn

    def _reopen(self) -> None:
        with self._cond:
            if self._down is None:
                return
            if self._closed:
                raise BackendUnavailable("the DuckDB store is closed")
            if self._conn is not None and self.path == MEMORY:
                raise BackendUnavailable(f"{self._down}; an in-memory database cannot be reopened")
            if time.monotonic() < self._retry_at:
                raise BackendUnavailable(self._down)
            if not self._cond.wait_for(lambda: self._lent == 0, DRAIN_TIMEOUT):
                raise BackendUnavailable(f"{self._down} (reads still running)")
            old, self._conn, self._idle = self._conn, None, []
        if old is not None:
            with suppress(duckdb.Error):
                old.close()  # closes its cursors too
        try:
            conn = duckdb.connect(self.path, config=self._config)
            cursors = [conn.cursor() for _ in range(self._size)]
        except duckdb.Error as exc:
            raise BackendUnavailable(self._failed_open(exc)) from exc
        with self._cond:
            self._conn, self._idle, self._down, self._attempts = conn, cursors, None, 0
            self._cond.notify_all()
        if self._opened:
            log.warning("DuckDB database %s reopened; reads and writes resume", self.path)
        self._opened = True

    def _failed_open(self, exc: duckdb.Error) -> str:
        """Record a failed (re)open: its reason, and when the next attempt may run."""
        full = self.disk.explain(exc) if self.disk is not None else None
        hint = ""
        if "lock" in str(exc).lower():
            hint = (
                " — DuckDB lets one process use a database file: run API and worker "
                "together with `slipstream up`, or use PostgreSQL for separate processes"
            )
        reason = full or f"cannot open DuckDB database {self.path}: {exc}{hint}"
        with self._cond:
            self._attempts += 1
            pause = min(REOPEN_MAX, REOPEN_FIRST * 2 ** (self._attempts - 1))
            self._retry_at = time.monotonic() + pause
            self._down = reason
        if self._opened:  # a failure of the first open is the caller's to report
            log.warning(
                "reopening DuckDB %s failed: %s; next attempt in %.2fs", self.path, reason, pause
            )
        return reason

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._down = "the DuckDB store is closed"
            conn, self._conn, self._idle = self._conn, None, []
        if conn is not None:
            with suppress(duckdb.Error):
                conn.close()

    # --- any thread -----------------------------------------------------------------------------

    def broke(self, cause: str) -> str:
        """Mark the database down after a failure that invalidated it; the reason calls now get."""
        with self._cond:
            if self._down is None:
                self._down = f"DuckDB database {self.path} failed ({cause}); reopening it"
                self._retry_at = 0.0  # the first attempt at once
                log.error("%s", self._down)
            return self._down

    @contextmanager
    def cursor(self) -> Iterator[Connection]:
        """A cursor of its own for one read; BackendUnavailable at once while the database is down."""
        with self._cond:
            self._cond.wait_for(lambda: self._idle or self._down is not None)
            if self._down is not None:
                raise BackendUnavailable(self._down)
            cursor = self._idle.pop()
            self._lent += 1
        try:
            yield cursor
        finally:
            # Returned with no result pending (a `fetchone` leaves one), which DuckDB would hold
            # against the next borrower's `sql()` (ResourceInUseException).
            with suppress(duckdb.Error):
                cursor.abort()
            with self._cond:
                self._lent -= 1
                self._idle.append(cursor)
                self._cond.notify_all()
