"""The embedded broker: one SQLite file in WAL mode, shareable by several processes.

Every statement runs on one dedicated thread with one connection, so the event loop never blocks
and the connection is never shared between threads. Each dataset is a topic: rows of `messages`
tagged with their dataset. A lease is `visible_at` moved into the future plus `deliveries + 1`;
an ack deletes the row. Waiting pulls poll the file (another process may publish) and are woken
at once by publishes from this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson

from slipstream.brokers import (
    ROW_ID,
    VARIABLE,
    BrokerCapabilities,
    BrokerSettings,
    DeadLetter,
    Delivery,
    Outgoing,
)
from slipstream.brokers.letters import short_reason
from slipstream.brokers.local_sql import (
    BURY_ONE,
    BURY_WORN,
    DELETE_ONE,
    DELETE_WORN,
    EVENTS_COLUMN,
    INSERT,
    LEASE,
    REPLAY,
    SCHEMA,
    WINDOW,
    drained,
    reclaim,
)
from slipstream.bundles import count_of
from slipstream.config import path_from_url
from slipstream.disk import DiskWatch
from slipstream.errors import BackendUnavailable, ConfigError
from slipstream.options import BackendOptions

T = TypeVar("T")
# No limit of its own on a message's size, lease or deliveries; it buries worn-out messages. A
# row costs far more than its bytes (insert, lease and delete each touch an index), so it takes
# bundles.
CAPABILITIES = BrokerCapabilities(dead_letter_ids=ROW_ID, bundles=True)

BACKLOG_CACHE_SECONDS = 0.5
WAL_LIMIT = 8 << 20  # bytes the write-ahead log keeps after a checkpoint
POLL_FIRST, POLL_MAX = 0.01, 0.1


class LocalOptions(BackendOptions):
    """`local:///path` takes no options."""


class LocalBroker:
    capabilities = CAPABILITIES
    url_options: ClassVar[type[BackendOptions]] = LocalOptions

    def __init__(self, path: Path, settings: BrokerSettings, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._lease_seconds = settings.lease_seconds
        self._max_deliveries = settings.max_deliveries
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slipstream-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._disk = DiskWatch(path)
        self._closed = False
        self._published: dict[str, asyncio.Event] = {}
        self._backlog: dict[str, tuple[int, float]] = {}  # dataset → (count, valid until)
        self._buried: Counter[str] = Counter()

    @classmethod
    def from_url(cls, url: str, settings: BrokerSettings) -> LocalBroker:
        LocalOptions.from_url(url, VARIABLE)
        try:
            path = path_from_url(url)
        except ConfigError as exc:
            raise ConfigError(f"{VARIABLE}={exc}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, settings)

    # --- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise BackendUnavailable(f"local broker {self.path}: already closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """On the SQL thread: `fn`, with SQLite's failures as BackendUnavailable naming the
        cause. After a full disk, SQLite's own words may be unrelated ("bad parameter or other
        API misuse"), so the disk is asked; while it stays full, calls fail at once."""
        try:
            self._disk.check()
            return fn(*args)
        except sqlite3.Error as exc:
            cause = self._disk.explain(exc) or f"local broker {self.path}: {exc}"
            raise BackendUnavailable(cause) from exc

    async def _transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._run(self._write, fn)
        return result

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("not open: call open() first")
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one write transaction (on the SQL thread)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite rolls back by itself after some errors (disk full)
                db.execute("ROLLBACK")
            raise
        return result

    def _topic(self, dataset: str) -> asyncio.Event:
        try:
            return self._published[dataset]
        except KeyError:
            raise ValueError(f"unknown dataset {dataset!r}: not opened by this broker") from None

    def _adjust_backlog(self, dataset: str, delta: int) -> None:
        """Keep the cached count right for this process's own changes until it expires."""
        if dataset in self._backlog:
            count, until = self._backlog[dataset]
            self._backlog[dataset] = (max(0, count + delta), until)

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self, datasets: Sequence[str]) -> None:
        if self._conn is None:
            await self._run(self._connect)
        for name in datasets:
            self._published.setdefault(name, asyncio.Event())

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # a new file only; set before tables
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(
                    f"cannot use WAL mode (got {mode}); put the queue file on a local disk"
                )
            db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not only a crash
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
            for table in ("messages", "dead_letters"):
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if "events" not in columns:
                    db.execute(EVENTS_COLUMN.format(table=table))
        except BaseException:
            db.close()
            raise
        self._conn = db

    async def close(self) -> None:
        if self._closed:
            return
        if self._conn is not None:
            with contextlib.suppress(BackendUnavailable):
                await self._run(self._db.close)
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        event = self._topic(dataset)
        if not messages:
            return
        events = await self._run(self._insert, dataset, messages)
        self._adjust_backlog(dataset, events)
        event.set()

    def _insert(self, dataset: str, messages: Sequence[Outgoing]) -> int:
        """Insert the messages in one transaction; answer how many events they carry."""
        now = time.time()
        # The events of one request share one attributes mapping: encoded once, not per event
        # (this thread is the embedded pipeline's busiest, docs/performance.md).
        encoded: dict[int, str] = {}
        rows = []
        for m in messages:
            text = encoded.get(id(m.attributes))
            if text is None:
                text = encoded[id(m.attributes)] = orjson.dumps(dict(m.attributes)).decode()
            rows.append((dataset, m.key, m.data, text, now, now, count_of(m.attributes)))
        self._write(lambda db: db.executemany(INSERT, rows))
        return sum(row[-1] for row in rows)

    # --- consuming ------------------------------------------------------------------------

    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        event = self._topic(dataset)
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        deadline = time.monotonic() + max(0.0, wait)
        interval = POLL_FIRST
        while True:
            event.clear()  # before looking: a publish from now on wakes the wait below
            deliveries, buried = await self._run(self._lease, dataset, max_messages)
            self._adjust_backlog(dataset, -buried)
            self._buried[dataset] += buried
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(interval, remaining)):
                    await event.wait()
            interval = min(interval * 2, POLL_MAX)

    def _lease(self, dataset: str, max_messages: int) -> tuple[list[Delivery], int]:
        """Bury worn-out messages at the head, lease the next ones; (deliveries, buried)."""
        now = time.time()
        params = {"dataset": dataset, "now": now, "n": max_messages, "max": self._max_deliveries}
        # A plain read first, so that idle polling never takes the write lock.
        if self._db.execute(WINDOW.format(extra=""), {**params, "n": 1}).fetchone() is None:
            return [], 0

        def lease(db: sqlite3.Connection) -> tuple[list[Delivery], int]:
            buried = 0  # events, a bundle counting for all it carries
            if db.execute(BURY_WORN, params).rowcount:
                buried = sum(n for (n,) in db.execute(DELETE_WORN + " RETURNING events", params))
            rows = db.execute(LEASE, {**params, "until": now + self._lease_seconds}).fetchall()
            decoded: dict[str, dict[str, str]] = {}  # the same text for a request's events
            deliveries = []
            for seq, key, data, text, published_at, count, _ in sorted(rows):
                attributes = decoded.get(text)
                if attributes is None:
                    attributes = decoded[text] = orjson.loads(text)
                delivery = Delivery(str(seq), key, data, count, published_at, dict(attributes))
                deliveries.append(delivery)
            return deliveries, buried

        return self._write(lease)

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None:
        self._topic(dataset)
        rows = [(dataset, int(d.handle)) for d in deliveries]

        def delete(db: sqlite3.Connection) -> bool:
            db.executemany(DELETE_ONE, rows)
            return drained(db)

        if await self._transact(delete):
            await self._run(reclaim, self._db)
        self._adjust_backlog(dataset, -sum(count_of(d.attributes) for d in deliveries))

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        event = self._topic(dataset)
        visible_at = time.time() + max(0.0, delay)
        rows = [(visible_at, dataset, int(d.handle)) for d in deliveries]
        sql = "UPDATE messages SET visible_at = ? WHERE dataset = ? AND seq = ?"
        await self._transact(lambda db: db.executemany(sql, rows))
        if delay <= 0:
            event.set()

    def buried(self, dataset: str) -> int:
        self._topic(dataset)
        return self._buried[dataset]

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        self._topic(dataset)
        reason, now = short_reason(reason), time.time()
        seqs = [(dataset, int(d.handle)) for d in deliveries]

        def bury(db: sqlite3.Connection) -> None:
            db.executemany(BURY_ONE, [(reason, now, *row) for row in seqs])
            db.executemany(DELETE_ONE, seqs)

        await self._transact(bury)
        self._adjust_backlog(dataset, -sum(count_of(d.attributes) for d in deliveries))

    # --- inspection -----------------------------------------------------------------------

    async def backlog(self, dataset: str) -> int:
        self._topic(dataset)
        cached = self._backlog.get(dataset)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        sql = "SELECT coalesce(sum(events), 0) FROM messages WHERE dataset = ?"
        count: int = await self._run(lambda: self._db.execute(sql, (dataset,)).fetchone()[0])
        self._backlog[dataset] = (count, time.monotonic() + BACKLOG_CACHE_SECONDS)
        return count

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        self._topic(dataset)
        sql = (
            "SELECT id, key, data, reason, deliveries, published_at, dead_at FROM dead_letters"
            " WHERE dataset = ? AND id > ? ORDER BY id LIMIT ?"
        )
        args = (dataset, int(after) if after else 0, limit)
        rows = await self._run(lambda: self._db.execute(sql, args).fetchall())
        return [DeadLetter(str(row[0]), *row[1:]) for row in rows]

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        event = self._topic(dataset)
        now = time.time()
        wanted = None if ids is None else [(now, dataset, int(i)) for i in ids]

        def replay(db: sqlite3.Connection) -> int:
            if wanted is None:
                moved = db.execute(REPLAY.format(where=""), (now, dataset)).rowcount
                db.execute("DELETE FROM dead_letters WHERE dataset = ?", (dataset,))
                return moved
            moved = db.executemany(REPLAY.format(where="AND id = ?"), wanted).rowcount
            db.executemany(
                "DELETE FROM dead_letters WHERE dataset = ? AND id = ?", [r[1:] for r in wanted]
            )
            return moved

        moved = await self._transact(replay)
        self._backlog.pop(dataset, None)  # a replayed bundle counts for its events: count again
        if moved:
            event.set()
        return moved
