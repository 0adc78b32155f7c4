"""PostgreSQL's maintained counts: what the datasets overview needs without counting rows.

`count(*)` reads the whole table (1.6 s at 2M rows here), and the newest write time had no
index at all. Each dataset has a one-row table `<dataset>__counts` — rows, rows whose key starts
with the hidden prefix (counted apart, so the overview can leave them out), quarantined events,
and the newest write time of each kind — kept by statement-level triggers on the dataset's table
and its quarantine table. Triggers rather than the write path: whatever changes the rows (the
worker's insert, retention, a worker of an older release during a rolling upgrade, an operator
in psql) is counted the same way, in the same transaction as the change, so a crash cannot leave
the counts apart from the rows. Each trigger aggregates the statement's transition table, so a
batch costs one update of the counts row, however many rows it holds.

The counts row is made, and filled by counting once, under a lock that holds writers back, when
the store first opens a table made before it existed (or opens it with another hidden prefix);
from then on the triggers keep it.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from slipstream.datasets import Dataset
from slipstream.stores.postgres_sql import object_name

STORED = sql.Identifier("_stored_at")
PREFIX_VARIABLE = sql.SQL("p")  # the trigger functions' copy of the counts row's prefix
log = logging.getLogger("slipstream.store")
TRIGGERS = ("slipstream_counts_insert", "slipstream_counts_delete", "slipstream_counts_truncate")


class Counts:
    """The counts table of one dataset in one schema: its DDL, its triggers and its read."""

    def __init__(self, schema: str, dataset: Dataset, hidden_prefix: str | None) -> None:
        self.hidden_prefix = hidden_prefix or ""
        self.table = sql.Identifier(schema, dataset.name)
        self.quarantine = sql.Identifier(schema, f"{dataset.name}__quarantine")
        self.counts = sql.Identifier(schema, object_name(dataset, "counts"))
        self.rows_function = sql.Identifier(schema, object_name(dataset, "count_rows"))
        self.quarantine_function = sql.Identifier(schema, object_name(dataset, "count_quarantine"))
        self.key = sql.Identifier(dataset.key)
        self.time = sql.Identifier(dataset.event_time)

    def create(self) -> list[sql.Composed]:
        """The table and the trigger functions; safe to run on every open."""
        return [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                "hidden_prefix text NOT NULL, rows bigint NOT NULL, hidden bigint NOT NULL, "
                "quarantined bigint NOT NULL, last_stored_at timestamptz, "
                "last_hidden_stored_at timestamptz)"
            ).format(self.counts),
            self._rows_function(),
            self._quarantine_function(),
        ]

    @staticmethod
    def _hidden(column: sql.Composable, prefix: sql.Composable = PREFIX_VARIABLE) -> sql.Composed:
        """Whether `column` (a key) starts with the hidden prefix (`p` in the trigger functions,
        which read it from the counts row)."""
        return sql.SQL("({prefix} <> '' AND starts_with({column}::text, {prefix}))").format(
            prefix=prefix, column=column
        )

    def _rows_function(self) -> sql.Composed:
        hidden = self._hidden(sql.SQL("r.{}").format(self.key))
        return sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "DECLARE p text;\n"
            "BEGIN\n"
            "  SELECT hidden_prefix INTO p FROM {counts};\n"
            "  IF TG_OP = 'INSERT' THEN\n"
            "    UPDATE {counts} SET rows = rows + d.n, hidden = hidden + d.h,\n"
            "      last_stored_at = GREATEST(last_stored_at, d.shown_at),\n"
            "      last_hidden_stored_at = GREATEST(last_hidden_stored_at, d.hidden_at)\n"
            "    FROM (SELECT count(*) AS n, count(*) FILTER (WHERE {hidden}) AS h,\n"
            "            max(r.{stored}) FILTER (WHERE NOT {hidden}) AS shown_at,\n"
            "            max(r.{stored}) FILTER (WHERE {hidden}) AS hidden_at\n"
            "          FROM new_rows r) d;\n"
            "  ELSIF TG_OP = 'DELETE' THEN\n"
            "    UPDATE {counts} SET rows = rows - d.n, hidden = hidden - d.h\n"
            "    FROM (SELECT count(*) AS n, count(*) FILTER (WHERE {hidden}) AS h\n"
            "          FROM old_rows r) d;\n"
            "  ELSE\n"
            "    UPDATE {counts} SET rows = 0, hidden = 0;\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "EXCEPTION WHEN undefined_table THEN\n"
            "  RETURN NULL;  -- the counts dropped by hand: the write goes on, uncounted\n"
            "END $f$"
        ).format(function=self.rows_function, counts=self.counts, hidden=hidden, stored=STORED)

    def _quarantine_function(self) -> sql.Composed:
        return sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "BEGIN\n"
            "  IF TG_OP = 'INSERT' THEN\n"
            "    UPDATE {counts} SET quarantined = quarantined + (SELECT count(*) FROM new_rows);\n"
            "  ELSIF TG_OP = 'DELETE' THEN\n"
            "    UPDATE {counts} SET quarantined = quarantined - (SELECT count(*) FROM old_rows);\n"
            "  ELSE\n"
            "    UPDATE {counts} SET quarantined = 0;\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "EXCEPTION WHEN undefined_table THEN\n"
            "  RETURN NULL;\n"
            "END $f$"
        ).format(function=self.quarantine_function, counts=self.counts)

    def triggers(self, table: sql.Identifier, function: sql.Identifier) -> list[sql.Composed]:
        """Insert, delete and truncate triggers on `table` calling `function`."""
        insert, delete, truncate = (sql.Identifier(name) for name in TRIGGERS)
        return [
            sql.SQL(
                "CREATE TRIGGER {} AFTER INSERT ON {} REFERENCING NEW TABLE AS new_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
            ).format(insert, table, function),
            sql.SQL(
                "CREATE TRIGGER {} AFTER DELETE ON {} REFERENCING OLD TABLE AS old_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
            ).format(delete, table, function),
            sql.SQL(
                "CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()"
            ).format(truncate, table, function),
        ]

    def recount(self) -> list[sql.Composed]:
        """Hold writers back, then count what is there: the row the triggers go on from."""
        hidden = self._hidden(self.key, sql.Placeholder("prefix"))
        return [
            sql.SQL("LOCK TABLE {}, {} IN SHARE ROW EXCLUSIVE MODE").format(
                self.table, self.quarantine
            ),
            sql.SQL(
                "INSERT INTO {counts} AS c (one, hidden_prefix, rows, hidden, quarantined, "
                "last_stored_at, last_hidden_stored_at) "
                "SELECT true, %(prefix)s, count(*), count(*) FILTER (WHERE {hidden}), "
                "(SELECT count(*) FROM {quarantine}), "
                "max({stored}) FILTER (WHERE NOT {hidden}), max({stored}) FILTER (WHERE {hidden}) "
                "FROM {table} "
                "ON CONFLICT (one) DO UPDATE SET hidden_prefix = EXCLUDED.hidden_prefix, "
                "rows = EXCLUDED.rows, hidden = EXCLUDED.hidden, quarantined = EXCLUDED.quarantined, "
                "last_stored_at = EXCLUDED.last_stored_at, "
                "last_hidden_stored_at = EXCLUDED.last_hidden_stored_at"
            ).format(
                counts=self.counts,
                hidden=hidden,
                quarantine=self.quarantine,
                stored=STORED,
                table=self.table,
            ),
        ]

    def summary(self, hide: bool) -> sql.Composed:
        """Rows, quarantined, newest event time and last write: the counts row, and the newest
        event time from the time index (a backward scan that stops at the first shown row)."""
        if hide:
            newest = sql.SQL(
                "(SELECT max({time}) AT TIME ZONE 'UTC' FROM {table} "
                "WHERE NOT starts_with({key}::text, c.hidden_prefix))"
            )
            rows, stored = sql.SQL("c.rows - c.hidden"), sql.SQL("c.last_stored_at")
        else:
            newest = sql.SQL("(SELECT max({time}) AT TIME ZONE 'UTC' FROM {table})")
            rows = sql.SQL("c.rows")
            stored = sql.SQL("GREATEST(c.last_stored_at, c.last_hidden_stored_at)")
        return sql.SQL(
            "SELECT {rows}, c.quarantined, {newest}, {stored} AT TIME ZONE 'UTC' FROM {counts} c"
        ).format(
            rows=rows,
            newest=newest.format(time=self.time, table=self.table, key=self.key),
            stored=stored,
            counts=self.counts,
        )


async def keeps_counts(
    conn: psycopg.AsyncConnection[Any], counts: Counts, *, create: bool, where: str
) -> bool:
    """At open, inside the migration: whether the dataset's counts are kept, made if need be.

    Not on a partitioned table: dropping a partition, the cheap retention, fires no delete
    trigger. Nor where the server refuses the triggers (a Citus distributed table, missing
    privileges): the overview then counts rows, as it did before the counts existed.
    """
    if await partitioned(conn, counts):
        return False
    if not create:
        return await counts_in_place(conn, counts)
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the migration whole
            await ensure_counts(conn, counts)
    except psycopg.Error as exc:
        log.warning(
            "%s: keeping no row counts for %s (%s); GET /v1/datasets counts its rows instead",
            where,
            counts.table.as_string(conn),
            " ".join(str(exc).split()),
        )
        return False
    return True


async def ensure_counts(conn: psycopg.AsyncConnection[Any], counts: Counts) -> None:
    """Inside the migration's transaction: the table, its functions, and — when the counts row
    is missing, counts apart another prefix, or a trigger is gone — a fresh count under a lock,
    with the missing triggers made before the lock is let go."""
    for statement in counts.create():
        await conn.execute(statement)
    found = await conn.execute(sql.SQL("SELECT hidden_prefix FROM {}").format(counts.counts))
    row = await found.fetchone()
    tables = (
        (counts.table, counts.rows_function),
        (counts.quarantine, counts.quarantine_function),
    )
    missing = [await _missing_triggers(conn, table) for table, _ in tables]
    if row is not None and row[0] == counts.hidden_prefix and not any(missing):
        return
    lock, fill = counts.recount()
    await conn.execute(lock)
    await conn.execute(fill, {"prefix": counts.hidden_prefix})
    for (table, function), gone in zip(tables, missing, strict=True):
        made = dict(zip(TRIGGERS, counts.triggers(table, function), strict=True))
        for name in gone:
            await conn.execute(made[name])


async def partitioned(conn: psycopg.AsyncConnection[Any], counts: Counts) -> bool:
    cursor = await conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [counts.table.as_string(conn)]
    )
    row = await cursor.fetchone()
    return row is not None and row[0] == "p"


async def counts_in_place(conn: psycopg.AsyncConnection[Any], counts: Counts) -> bool:
    """Whether the counts table is there, counting apart this prefix, with all its triggers: a
    store that may not create resources uses the counts only then."""
    cursor = await conn.execute("SELECT to_regclass(%s)", [counts.counts.as_string(conn)])
    if (await cursor.fetchone()) in (None, (None,)):
        return False
    found = await conn.execute(sql.SQL("SELECT hidden_prefix FROM {}").format(counts.counts))
    row = await found.fetchone()
    if row is None or row[0] != counts.hidden_prefix:
        return False
    for table in (counts.table, counts.quarantine):
        if await _missing_triggers(conn, table):
            return False
    return True


async def _missing_triggers(conn: psycopg.AsyncConnection[Any], table: sql.Identifier) -> list[str]:
    cursor = await conn.execute(
        sql.SQL(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = {}::regclass AND NOT tgisinternal"
        ).format(sql.Literal(table.as_string(conn))),
    )
    present = {name for (name,) in await cursor.fetchall()}
    return [name for name in TRIGGERS if name not in present]
