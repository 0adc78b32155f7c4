"""PostgreSQL: the store that separate API and worker processes share.

Every call borrows a connection from one psycopg `AsyncConnectionPool` (autocommit; a write is
one explicit transaction). A write COPYs the batch into a temporary staging table and moves it
with `INSERT … SELECT … ON CONFLICT (key) DO NOTHING`, so a redelivered event never makes a
second row and the row count tells what was new. Migrations run at `open()` inside one
transaction holding an advisory lock, so processes starting together take turns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from slipstream.datasets import RESERVED_COLUMNS, Dataset, FieldType, schema_changes
from slipstream.errors import BackendUnavailable, ConfigError, TransientStoreError
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
from slipstream.stores import postgres_sql as q
from slipstream.stores.coalesce import Coalescer
from slipstream.stores.postgres_counts import Counts, keeps_counts
from slipstream.stores.postgres_loaders import configure
from slipstream.stores.postgres_options import PostgresOptions, parse_url
from slipstream.stores.reads import Bound, Reads

T = TypeVar("T")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
PING_TIMEOUT = 3.0


class PostgresStore:
    url_options: ClassVar[type[BackendOptions]] = PostgresOptions

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        create_resources: bool = True,
        hidden_key_prefix: str | None = None,
        pool_min: int = 2,
        pool_max: int = 10,
        pool_timeout: float = 10.0,
    ) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self._create = create_resources
        self._hidden = hidden_key_prefix
        self._counted: dict[str, Counts] = {}  # datasets whose counts table the triggers keep
        self._pool_min, self._pool_max, self._timeout = (
            pool_min,
            max(pool_max, pool_min),
            pool_timeout,
        )
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._statements: dict[str, q.Statements] = {}
        self._lookups: dict[str, Coalescer[str, dict[str, Any]]] = {}
        params = conninfo_to_dict(conninfo)
        host, port, dbname = (params.get(k, "") for k in ("host", "port", "dbname"))
        self.where = f"PostgreSQL {host or 'localhost'}:{port or 5432}/{dbname} schema {schema}"

    @classmethod
    def from_url(cls, url: str, settings: StoreSettings) -> PostgresStore:
        """`postgresql://user:pass@host:5432/db?schema=NAME` (also `postgres://`); the options
        and the libpq parameters it passes on: postgres_options.py."""
        conninfo, options = parse_url(url)
        return cls(
            conninfo,
            schema=options.schema_,
            create_resources=settings.create_resources,
            hidden_key_prefix=settings.hidden_key_prefix,
            pool_min=options.pool_min,
            pool_max=options.pool_max,
            pool_timeout=options.pool_timeout,
        )

    def _statements_for(self, dataset: Dataset) -> q.Statements:
        found = self._statements.get(dataset.name)
        if found is None or (found.dataset is not dataset and found.dataset != dataset):
            found = self._statements[dataset.name] = q.Statements(self.schema, dataset)
            self._lookups.pop(dataset.name, None)
        return found

    # --- connections --------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], Awaitable[T]], wait: float | None = None) -> T:
        """`fn` on a pooled connection, waiting `wait` seconds for one (default `pool_timeout`).

        A connection found dead (server restarted, backend terminated) makes the pool test all its
        idle ones, and `fn` runs once more on a fresh one; `fn` must therefore be safe to repeat
        (reads, and writes thanks to ON CONFLICT). Any other connection failure, or no connection
        in time, is BackendUnavailable."""
        if self._pool is None:
            raise BackendUnavailable(f"{self.where}: the store is not open")
        for attempt in (1, 2):
            conn: Connection | None = None
            try:
                async with self._pool.connection(wait) as conn:
                    return await fn(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                lost = conn is not None and conn.broken and not isinstance(exc, PoolTimeout)
                if attempt == 1 and lost:
                    with suppress(Exception):
                        await self._pool.check()
                    continue
                raise BackendUnavailable(f"{self.where}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self, datasets: Sequence[Dataset]) -> None:
        if self._pool is None:
            pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                self.conninfo,
                min_size=self._pool_min,
                max_size=self._pool_max,
                timeout=self._timeout,
                kwargs={"autocommit": True},
                configure=configure,
                open=False,
                name="slipstream",
            )
            try:
                await pool.open(wait=True, timeout=self._timeout)
            except PoolTimeout as exc:
                await pool.close()
                raise BackendUnavailable(
                    f"cannot connect to {self.where}: {await self._why_not()}"
                ) from exc
            self._pool = pool
        await self._run(lambda conn: self._migrate_all(conn, list(datasets)))

    async def _why_not(self) -> str:
        """The pool only logs why it cannot connect; one plain attempt tells (refused, auth…)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo)
        except psycopg.Error as exc:
            return " ".join(str(exc).split())
        await conn.close()
        return f"no connection within {self._timeout:g} s"

    async def _migrate_all(self, conn: Connection, datasets: list[Dataset]) -> None:
        async with conn.transaction():
            lock = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
            await conn.execute(lock, [f"slipstream:migrate:{self.schema}"])
            found = await conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]
            )
            if await found.fetchone() is None:
                if not self._create:
                    raise ConfigError(
                        f"{self.where}: schema {self.schema!r} does not exist and "
                        "SLIPSTREAM_CREATE_RESOURCES is off"
                    )
                await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (dataset text, field text, type text NOT NULL, "
                    "PRIMARY KEY (dataset, field))"
                ).format(sql.Identifier(self.schema, q.FIELDS_TABLE))
            )
            for dataset in datasets:
                await self._migrate(conn, dataset)

    async def _migrate(self, conn: Connection, dataset: Dataset) -> None:
        statements = self._statements_for(dataset)
        found = await conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            [self.schema, dataset.name],
        )
        if await found.fetchone() is not None:
            stored = await self._stored_fields(conn, dataset)
            changes = [statements.add_column(s) for s in schema_changes(dataset, stored)]
            ddl = changes + statements.create_quarantine()
        elif self._create:
            ddl = statements.create_table()
        else:
            raise ConfigError(
                f"table {dataset.name!r} does not exist in {self.where} and "
                "SLIPSTREAM_CREATE_RESOURCES is off"
            )
        for statement in ddl + statements.create_indexes():
            await conn.execute(statement)
        counts = Counts(self.schema, dataset, self._hidden)
        if await keeps_counts(conn, counts, create=self._create, where=self.where):
            self._counted[dataset.name] = counts
        async with conn.cursor() as cursor:
            await cursor.executemany(
                sql.SQL(
                    "INSERT INTO {} (dataset, field, type) VALUES (%s, %s, %s) "
                    "ON CONFLICT (dataset, field) DO UPDATE SET type = EXCLUDED.type"
                ).format(sql.Identifier(self.schema, q.FIELDS_TABLE)),
                [(dataset.name, f.name, f.type) for f in dataset.fields],
            )

    async def _stored_fields(self, conn: Connection, dataset: Dataset) -> dict[str, FieldType]:
        cursor = await conn.execute(
            sql.SQL("SELECT field, type FROM {} WHERE dataset = %s").format(
                sql.Identifier(self.schema, q.FIELDS_TABLE)
            ),
            [dataset.name],
        )
        rows = await cursor.fetchall()
        if rows:
            return {name: cast(FieldType, kind) for name, kind in rows}
        # A table made before the metadata table existed, or by hand: read its column types.
        cursor = await conn.execute(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            [self.schema, dataset.name],
        )
        stored: dict[str, FieldType] = {}
        for name, udt_name in await cursor.fetchall():
            kind = q.field_type_of_column(udt_name)
            if kind is not None and name not in RESERVED_COLUMNS:
                stored[name] = kind
        return stored

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        await pool.close(timeout=5)

    async def ping(self) -> None:
        async def select_one(conn: Connection) -> None:
            await conn.execute("SELECT 1")

        # Readiness checks wait less than a worker's write would.
        await self._run(select_one, min(self._timeout, PING_TIMEOUT))

    # --- writes -------------------------------------------------------------------------------

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        if not rows.rows and not rejected:
            return WriteResult(0, 0)
        statements = self._statements_for(dataset)
        try:
            staging = statements.staging(rows.columns) if rows.rows else None
            values = q.unique_rows(rows.rows, rows.columns.index(dataset.key)) if rows.rows else []
            quarantine = q.quarantine_rows(rejected)

            async def run(conn: Connection) -> WriteResult:
                inserted = quarantined = 0
                async with conn.transaction(), conn.cursor() as cursor:
                    if staging is not None:
                        inserted = await self._copy(cursor, *staging, values)
                    if quarantine:
                        ddl = statements.quarantine_staging()
                        quarantined = await self._copy(cursor, ddl, q.QUARANTINE_TYPES, quarantine)
                return WriteResult(inserted, quarantined)

            return await self._run(run)
        except BackendUnavailable as exc:
            raise TransientStoreError(f"write failed, will retry, {exc}") from exc
        except Exception as exc:
            raise q.sort_error(dataset, exc) from exc

    @staticmethod
    async def _copy(
        cursor: psycopg.AsyncCursor[Any],
        statements: list[sql.Composed],
        types: list[str],
        values: Sequence[Sequence[Any]],
    ) -> int:
        """Create the staging table, COPY `values` into it, run the INSERT; rows inserted."""
        create, copy_into, insert = statements
        await cursor.execute(create, prepare=False)
        async with cursor.copy(copy_into) as copy:
            copy.set_types(types)
            for row in values:
                await copy.write_row(row)
        await cursor.execute(insert, prepare=False)
        return max(cursor.rowcount, 0)

    async def _change(self, bound: Bound) -> int:
        async def run(conn: Connection) -> int:
            cursor = await conn.execute(bound.sql, bound.params)
            return max(cursor.rowcount, 0)

        return await self._run(run)

    async def release_quarantined(self, dataset: Dataset, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return await self._change(self._statements_for(dataset).reads.release(ids))

    async def expire(self, dataset: Dataset, before: datetime) -> int:
        return await self._change(self._statements_for(dataset).reads.expire(before))

    # --- reads --------------------------------------------------------------------------------

    async def _fetch(self, bound: Bound) -> list[tuple[Any, ...]]:
        async def run(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(bound.sql, bound.params)
            return await cursor.fetchall()

        return await self._run(run)

    async def get(self, dataset: Dataset, event_id: str) -> dict[str, Any] | None:
        reads = self._statements_for(dataset).reads
        lookups = self._lookups.get(dataset.name)
        if lookups is None:
            lookups = self._lookups[dataset.name] = self._lookup(reads)
        return await lookups.get(event_id)

    def _lookup(self, reads: Reads) -> Coalescer[str, dict[str, Any]]:
        async def fetch(ids: list[str]) -> dict[str, dict[str, Any]]:
            rows = await self._fetch(reads.get(ids))
            return {row[reads.key_index]: reads.event(row) for row in rows}

        # Several lookups in flight at once: the pool has the connections for it.
        return Coalescer(fetch, concurrency=4)

    async def stats(self, dataset: Dataset, query: StatsQuery) -> list[dict[str, Any]]:
        reads = self._statements_for(dataset).reads
        bound = reads.stats(query)
        try:
            rows = await self._fetch(bound)
        except psycopg.errors.NumericValueOutOfRange:
            # A float average whose running sums leave a double's range (values past about
            # 1e154 already do): again in numeric, three times slower, so only then.
            bound = reads.stats(query, exact=True)
            rows = await self._fetch(bound)
        return [reads.stats_row(query, bound, row) for row in rows]

    async def quarantined(self, dataset: Dataset, query: QuarantineQuery) -> list[QuarantinedEvent]:
        bound = self._statements_for(dataset).reads.quarantine(query.after, None, query.limit)
        return [Reads.quarantined(row) for row in await self._fetch(bound)]

    async def quarantined_by_id(
        self, dataset: Dataset, ids: Sequence[str] | None, limit: int
    ) -> list[QuarantinedEvent]:
        if ids is not None and not ids:
            return []
        bound = self._statements_for(dataset).reads.quarantine(None, ids, limit)
        return [Reads.quarantined(row) for row in await self._fetch(bound)]

    async def summary(
        self, dataset: Dataset, *, exclude_key_prefix: str | None = None
    ) -> DatasetSummary:
        counts = self._counted.get(dataset.name)
        if counts is not None and exclude_key_prefix in (None, self._hidden):
            statement = counts.summary(hide=exclude_key_prefix is not None)

            async def read_counts(conn: Connection) -> list[tuple[Any, ...]]:
                try:
                    return await (await conn.execute(statement)).fetchall()
                except psycopg.errors.UndefinedTable:
                    return []

            found = await self._run(read_counts)
            if found:
                return summary_of(*found[0])
            # The counts table was dropped or emptied since it was opened: count the rows
            # until it is made again (at the next open).
            self._counted.pop(dataset.name, None)
        bound = self._statements_for(dataset).reads.summary(exclude_key_prefix)
        return summary_of(*(await self._fetch(bound))[0])

    # Last in the class: below this, `list` would name the method in annotations.
    async def list(self, dataset: Dataset, query: ListQuery) -> list[dict[str, Any]]:
        reads = self._statements_for(dataset).reads
        return [reads.event(row) for row in await self._fetch(reads.list(query))]
