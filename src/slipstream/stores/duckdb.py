"""DuckDB: the single-process embedded store.

DuckDB lets one process write a database file. Inside it, one writer thread owns the main
connection and runs every write and DDL in turn, so writes never conflict with each other. Reads
run on a small pool where each borrows a cursor (a connection to the same database): they see the
last committed state and never wait behind a write batch.

A failure of the database or its disk is told apart from a failure of the statement: it becomes
BackendUnavailable (TransientStoreError for writes) whose message names the cause ("disk full: …"),
a database invalidated by a fatal error is reopened (duckdb_database.py), and `ping` fails while
either lasts, so readiness reports it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar

import duckdb
import pyarrow as pa

from slipstream.datasets import Dataset
from slipstream.errors import BackendUnavailable, TransientStoreError
from slipstream.events import EventRows, Rejected
from slipstream.options import BackendOptions
from slipstream.stores import (
    DatasetSummary,
    ListQuery,
    QuarantinedEvent,
    QuarantineQuery,
    StatsQuery,
    StoreSettings,
    WriteResult,
    summary_of,
)
from slipstream.stores import duckdb_sql as sql
from slipstream.stores.answers import Answers, kept
from slipstream.stores.coalesce import LookupsClosed, ThreadCoalescer
from slipstream.stores.dialects import DUCKDB
from slipstream.stores.duckdb_counts import Tallies
from slipstream.stores.duckdb_database import Connection, Database, is_invalidated
from slipstream.stores.duckdb_migrations import migrate
from slipstream.stores.duckdb_options import DuckDBOptions, parse_url
from slipstream.stores.duckdb_writes import Batch, write_batch
from slipstream.stores.key_prefixes import AbsentPrefixes
from slipstream.stores.reads import Bound, Reads, reads_for
from slipstream.stores.windows import windows

T = TypeVar("T")
P = TypeVar("P", bound=Sized)  # a page: rows, events or an Arrow table
READERS = 4


class DuckDBStore:
    url_options: ClassVar[type[BackendOptions]] = DuckDBOptions

    def __init__(
        self,
        path: str,
        *,
        create_tables: bool = True,
        readers: int = READERS,
        config: dict[str, Any] | None = None,
        hidden_key_prefix: str | None = None,
    ) -> None:
        self.path = path
        self._config = config or {}
        self._create_tables = create_tables
        # A cursor per reader thread, and one for the lookup thread.
        self._db = Database(path, self._config, readers + 1)
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="duckdb-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="duckdb-reader")
        self._reopen_queued = threading.Event()
        # Reads by id: merged into one query per dataset on a thread with a cursor of its own.
        self._lookups: ThreadCoalescer[str, str, dict[str, Any]] | None = None
        self._reads: dict[str, Reads] = {}
        self._prefixes = AbsentPrefixes()
        self._tallies = Tallies(hidden_key_prefix)  # the overview's counts (duckdb_counts.py)
        self._answers = Answers()  # lists and stats while nothing is written (answers.py)

    @classmethod
    def from_url(cls, url: str, settings: StoreSettings) -> DuckDBStore:
        """`duckdb:///./data/warehouse.duckdb` (relative), `duckdb:////abs/path`, or
        `duckdb:///:memory:` (tests; gone when closed). Query options are DuckDB settings,
        e.g. `?threads=2&memory_limit=2GB` (duckdb_options.py)."""
        path, options = parse_url(url)
        return cls(
            path,
            create_tables=settings.create_resources,
            config=options.config(),
            hidden_key_prefix=settings.hidden_key_prefix,
        )

    # --- threads ------------------------------------------------------------------------------

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` on the writer thread; environmental failures (a database
        down or being reopened, a full disk) come out as TransientStoreError naming the cause."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._writer_pool, self._guarded, fn, *args)
        except RuntimeError as exc:  # the pool was shut down
            raise TransientStoreError("the DuckDB store is closed") from exc
        return await future

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in (1, 2):
            try:
                conn = self._db.connection()
                if self._db.disk is not None:
                    self._db.disk.check()  # while the disk is full, fail before DuckDB tries
                return fn(conn, *args)
            except BackendUnavailable as exc:
                raise TransientStoreError(str(exc)) from exc
            except duckdb.Error as exc:
                cause = self._failure(exc)
                if cause is None:
                    raise
                if attempt == 1 and is_invalidated(exc):
                    # Once more on the reopened database: every writer statement is safe to
                    # repeat (inserts skip rows already there, deletes find nothing left).
                    continue
                raise TransientStoreError(cause) from exc
        raise AssertionError("unreachable")

    def _failure(self, exc: duckdb.Error) -> str | None:
        """Why a statement failed when the cause is the database or its disk, not the statement."""
        full = self._db.disk.explain(exc) if self._db.disk is not None else None
        if is_invalidated(exc):
            self._request_reopen()
            return self._db.broke(full or f"{type(exc).__name__}: {exc}")
        if full is not None:
            return full
        if sql.is_unavailable(exc):
            return f"DuckDB {self.path}: {type(exc).__name__}: {exc}"
        return None

    def _request_reopen(self) -> None:
        """Ask the writer thread to reopen the database (once, however many readers ask)."""
        if self._reopen_queued.is_set():
            return
        self._reopen_queued.set()

        def reopen() -> None:
            self._reopen_queued.clear()
            self._tallies.forget()
            with suppress(BackendUnavailable):
                self._db.connection()

        with suppress(RuntimeError):  # the pool was shut down: the store is closing
            self._writer_pool.submit(reopen)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._reader_pool, self._reading, fn)
        except RuntimeError as exc:  # the pool was shut down
            raise BackendUnavailable("the DuckDB store is closed") from exc
        return await future

    def _reading(self, fn: Callable[[Connection], T]) -> T:
        """On a reader (or the lookup) thread: `fn` on a borrowed cursor."""
        try:
            with self._db.cursor() as cursor:
                return fn(cursor)
        except BackendUnavailable:
            if self._db.down is not None:
                self._request_reopen()
            raise
        except duckdb.Error as exc:
            cause = self._failure(exc)
            if cause is None:
                raise
            raise BackendUnavailable(cause) from exc

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self, datasets: Sequence[Dataset]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self._open, list(datasets))
        if self._lookups is None:
            self._lookups = ThreadCoalescer(self._lookup, name="duckdb-lookups")

    def _open(self, datasets: list[Dataset]) -> None:
        conn = self._db.connection()
        conn.execute(sql.create_fields_table())
        for dataset in datasets:
            migrate(conn, dataset, self.path, create_tables=self._create_tables)

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        if self._lookups is not None:
            self._lookups.close()
            self._lookups = None
        self._reader_pool.shutdown(wait=True)
        self._writer_pool.shutdown(wait=True)
        self._db.close()

    async def ping(self) -> None:
        """Ready only when a statement runs and the disk, if a write found it full, has room
        again: a `SELECT 1` alone succeeds while every write fails."""
        if self._db.down is not None:
            await self._on_writer(lambda conn: None)  # reopens the database when due
        disk = self._db.disk

        def check(cursor: Connection) -> None:
            if disk is not None:
                disk.check()
            cursor.execute("SELECT 1").fetchone()

        await self._read(check)

    # --- writes -------------------------------------------------------------------------------

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        if not rows.rows and not rejected:
            return WriteResult(0, 0)
        try:
            return await self._on_writer(self._write, dataset, rows, list(rejected))
        except TransientStoreError:
            raise
        except Exception as exc:
            raise sql.sort_error(dataset, exc) from exc

    def _write(
        self, conn: Connection, dataset: Dataset, rows: EventRows, rejected: list[Rejected]
    ) -> WriteResult:
        batch = Batch(dataset, rows, rejected)
        return write_batch(conn, batch, self._tallies, self._prefixes, self._answers)

    async def _delete(self, dataset: Dataset, bound: Bound) -> int:
        def run(conn: Connection) -> int:
            rows = conn.execute(bound.sql, bound.params).fetchall()
            self._answers.changed(dataset.name)
            self._tallies.deleted(conn, dataset)
            return int(rows[0][0]) if rows else 0

        return await self._on_writer(run)

    async def release_quarantined(self, dataset: Dataset, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return await self._delete(dataset, self._reads_for(dataset).release(ids))

    async def expire(self, dataset: Dataset, before: datetime) -> int:
        return await self._delete(dataset, self._reads_for(dataset).expire(before))

    # --- reads --------------------------------------------------------------------------------

    def _reads_for(self, dataset: Dataset) -> Reads:
        return reads_for(self._reads, DUCKDB, dataset)

    async def _fetch(self, bound: Bound) -> list[tuple[Any, ...]]:
        return await self._read(lambda cursor: cursor.execute(bound.sql, bound.params).fetchall())

    async def _newest(self, dataset: Dataset) -> datetime | None:
        """About the newest event time: the counts' (duckdb_counts.py) once taken, else the
        table's, read once per version (windows.py needs no more than an estimate)."""
        tally = self._tallies.get(dataset.name)
        if tally is not None:
            return tally.summary_values(hide=False)[2]
        statement = sql.newest_time(dataset)
        rows = await self._answers.read(
            dataset.name, statement, partial(self._read, lambda c: c.execute(statement).fetchall())
        )
        newest: datetime | None = rows[0][0] if rows else None
        return newest

    async def _answer(
        self, dataset: Dataset, bound: Bound, what: str, shape: Callable[[tuple[Any, ...]], T]
    ) -> list[T]:
        """`_fetch`, each row made into `what` the caller answers by `shape` (answers.py)."""
        fetch = partial(self._fetch, bound)
        return await kept(self._answers, dataset.name, what, bound.sql, bound.params, fetch, shape)

    async def _look(self, dataset: Dataset, prefix: str) -> None:
        """Whether any key starts with `prefix`, found on the writer thread (key_prefixes.py)."""
        bound = self._reads_for(dataset).any_prefixed(prefix)

        def look(conn: Connection) -> None:
            row = conn.execute(bound.sql, bound.params).fetchone()
            self._prefixes.learn(dataset.name, prefix, bool(row and row[0]))

        with suppress(TransientStoreError, duckdb.Error):  # not known: the test stays
            await self._on_writer(look)

    async def get(self, dataset: Dataset, event_id: str) -> dict[str, Any] | None:
        if self._lookups is None:
            raise BackendUnavailable("the DuckDB store is not open")
        self._reads_for(dataset)
        try:
            return await self._lookups.get(dataset.name, event_id)
        except LookupsClosed:
            raise BackendUnavailable("the DuckDB store is closed") from None

    def _lookup(self, name: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """On the lookup thread: the events of `ids` in one query."""
        reads = self._reads[name]
        bound = reads.get(ids)
        rows = self._reading(lambda cursor: cursor.execute(bound.sql, bound.params).fetchall())
        return {row[reads.key_index]: reads.event(row) for row in rows}

    async def stats(self, dataset: Dataset, query: StatsQuery) -> list[dict[str, Any]]:
        reads = self._reads_for(dataset)
        query = await self._prefixes.narrowed(dataset.name, query, partial(self._look, dataset))
        bound = reads.stats(query)
        return list(
            await self._answer(dataset, bound, "buckets", partial(reads.stats_row, query, bound))
        )

    async def quarantined(self, dataset: Dataset, query: QuarantineQuery) -> list[QuarantinedEvent]:
        bound = self._reads_for(dataset).quarantine(query.after, None, query.limit)
        return [Reads.quarantined(row) for row in await self._fetch(bound)]

    async def quarantined_by_id(
        self, dataset: Dataset, ids: Sequence[str] | None, limit: int
    ) -> list[QuarantinedEvent]:
        if ids is not None and not ids:
            return []
        bound = self._reads_for(dataset).quarantine(None, ids, limit)
        return [Reads.quarantined(row) for row in await self._fetch(bound)]

    async def summary(
        self, dataset: Dataset, *, exclude_key_prefix: str | None = None
    ) -> DatasetSummary:
        if exclude_key_prefix in (None, self._tallies.hidden_prefix):
            tally = self._tallies.get(dataset.name)
            if tally is None or not tally.newest_known:
                await self._on_writer(self._take_tally, dataset)
                tally = self._tallies.get(dataset.name)
            if tally is not None:
                return summary_of(*tally.summary_values(hide=exclude_key_prefix is not None))
        look = partial(self._look, dataset)
        prefix = await self._prefixes.needed(dataset.name, exclude_key_prefix, look)
        rows = await self._fetch(self._reads_for(dataset).summary(prefix))
        return summary_of(*rows[0])

    def _take_tally(self, conn: Connection, dataset: Dataset) -> None:
        if self._tallies.get(dataset.name) is None:
            self._tallies.take(conn, dataset)
        else:
            self._tallies.read_newest(conn, dataset)

    async def _windowed(
        self, dataset: Dataset, query: ListQuery, read: Callable[[Bound], Awaitable[P]]
    ) -> P:
        """`read` of the list's statement over windows widened until one fills the page."""
        reads = self._reads_for(dataset)
        query = await self._prefixes.narrowed(dataset.name, query, partial(self._look, dataset))
        for window in windows(query, await self._newest(dataset)):  # newest first (windows.py)
            found = await read(reads.list(window))
            if len(found) >= query.limit:
                break
        return found

    async def list_arrow(self, dataset: Dataset, query: ListQuery) -> pa.Table:
        def arrow(cursor: Connection, bound: Bound) -> pa.Table:
            return cursor.sql(bound.sql, params=bound.params).to_arrow_table()

        return await self._windowed(dataset, query, lambda b: self._read(partial(arrow, bound=b)))

    # Last in the class: below this, `list` would name the method in annotations.
    async def list(self, dataset: Dataset, query: ListQuery) -> list[dict[str, Any]]:
        reads = self._reads_for(dataset)
        events = await self._windowed(
            dataset, query, lambda b: self._answer(dataset, b, "events", reads.event)
        )
        return list(events)  # the events themselves are shared with the answers kept
