"""DDL and the write path's SQL for the PostgreSQL store, composed with psycopg.sql, and error
sorting (its reads are `stores/reads.py`).

Identifiers (schema, tables, columns) come from the dataset declaration and are always quoted
with `sql.Identifier`; values are always bound as parameters. Statements are composed once per
dataset (`Statements`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from slipstream.datasets import Dataset, FieldSpec, FieldType
from slipstream.errors import TerminalStoreError, TransientStoreError
from slipstream.events import EXTRA_COLUMN, RECEIVED_COLUMN, Rejected
from slipstream.stores.dialects import POSTGRES
from slipstream.stores.reads import Reads
from slipstream.stores.values import utc

FIELDS_TABLE = "_slipstream_fields"
BATCH_TABLE = "_slipstream_batch"
REJECTED_TABLE = "_slipstream_rejected"
# Field type → column type, and the type COPY's binary format sends to the staging table. json
# is staged as the text the codec made and cast to jsonb by the INSERT … SELECT (binary jsonb
# wants a version byte in front, which psycopg only adds to values it serialises itself).
_TYPES: dict[FieldType, tuple[LiteralString, str]] = {
    "string": ("text", "text"),
    "enum": ("text", "text"),
    "int": ("bigint", "int8"),
    "float": ("double precision", "float8"),
    "bool": ("boolean", "bool"),
    "timestamp": ("timestamptz", "timestamptz"),
    "json": ("jsonb", "text"),
}
SQL_TYPES = {kind: sql.SQL(column) for kind, (column, _) in _TYPES.items()}
# A table made before the metadata table existed (or by hand): column type → field type.
_FIELD_TYPES: dict[str, FieldType] = {
    **{name: "string" for name in ("text", "varchar")},
    **{name: "int" for name in ("int8", "int4", "int2")},
    **{name: "float" for name in ("float8", "float4")},
    **{"bool": "bool", "timestamptz": "timestamp", "jsonb": "json", "json": "json"},
}
_QUARANTINE_COLUMNS = sql.SQL("id, reason, raw, received_at")


def field_type_of_column(udt_name: str) -> FieldType | None:
    return _FIELD_TYPES.get(udt_name)


def object_name(dataset: Dataset, suffix: str) -> str:
    """`<dataset>__<suffix>`, shortened with a hash to PostgreSQL's 63-byte identifier limit."""
    name = f"{dataset.name}__{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[:52]}_{digest}"


def indexed_fields(dataset: Dataset) -> list[FieldSpec]:
    """Fields with their own (field, event time, key) index: the enums, made to be filtered on."""
    return [f for f in dataset.fields if f.type == "enum" and f.name != dataset.key]


class Statements:
    """Everything about one dataset in one schema: its DDL, its write path and its reads."""

    def __init__(self, schema: str, dataset: Dataset) -> None:
        self.dataset = dataset
        self.schema = schema
        self.table = sql.Identifier(schema, dataset.name)
        self.quarantine = sql.Identifier(schema, f"{dataset.name}__quarantine")
        self.time = sql.Identifier(dataset.event_time)
        self.key = sql.Identifier(dataset.key)
        self.reads = Reads(POSTGRES, dataset, (schema,))

    # --- tables -------------------------------------------------------------------------------

    def create_table(self) -> list[sql.Composed]:
        columns: list[sql.Composable] = [
            sql.SQL("{} {}").format(sql.Identifier(f.name), SQL_TYPES[f.type])
            for f in self.dataset.fields
        ]
        columns += [
            sql.SQL("{} jsonb").format(sql.Identifier(EXTRA_COLUMN)),
            sql.SQL("{} timestamptz").format(sql.Identifier(RECEIVED_COLUMN)),
            sql.SQL('"_stored_at" timestamptz NOT NULL DEFAULT now()'),
            sql.SQL("PRIMARY KEY ({})").format(self.key),
        ]
        return [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                self.table, sql.SQL(", ").join(columns)
            ),
            *self.create_quarantine(),
        ]

    def create_quarantine(self) -> list[sql.Composed]:
        return [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, reason text NOT NULL, "
                "raw text NOT NULL, received_at timestamptz NOT NULL)"
            ).format(self.quarantine),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (received_at, id)").format(
                sql.Identifier(object_name(self.dataset, "quarantine_received")), self.quarantine
            ),
        ]

    def create_indexes(self) -> list[sql.Composed]:
        """The keyset list and time ranges; each enum field followed by the same order."""
        order = sql.SQL("{} DESC, {} DESC").format(self.time, self.key)
        statements = [
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(object_name(self.dataset, "time")), self.table, order
            )
        ]
        for spec in indexed_fields(self.dataset):
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}, {})").format(
                    sql.Identifier(object_name(self.dataset, spec.name)),
                    self.table,
                    sql.Identifier(spec.name),
                    order,
                )
            )
        return statements

    def add_column(self, spec: FieldSpec) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            self.table, sql.Identifier(spec.name), SQL_TYPES[spec.type]
        )

    # --- writes -------------------------------------------------------------------------------

    def staging(self, columns: Sequence[str]) -> tuple[list[sql.Composed], list[str]]:
        """DDL of the batch's staging table, its COPY and INSERT, and the COPY column types."""
        kinds: dict[str, FieldType] = {f.name: f.type for f in self.dataset.fields}
        kinds[EXTRA_COLUMN] = "json"
        kinds[RECEIVED_COLUMN] = "timestamp"
        unknown = [c for c in columns if c not in kinds]
        if unknown:
            raise ValueError(f"columns {unknown} are not declared")
        if self.dataset.key not in columns:
            raise ValueError(f"the batch has no key column {self.dataset.key!r}")
        staging = sql.Identifier("pg_temp", BATCH_TABLE)
        names = [sql.Identifier(c) for c in columns]
        types = [_TYPES[kinds[c]][1] for c in columns]
        selected = [
            sql.SQL("{}::jsonb").format(n) if kinds[c] == "json" else n
            for c, n in zip(columns, names, strict=True)
        ]
        create = sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            staging,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(n, sql.SQL(t)) for n, t in zip(names, types, strict=True)
            ),
        )
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            staging, sql.SQL(", ").join(names)
        )
        # Keys in order: two batches sharing keys then wait for each other instead of deadlocking.
        # No conflict target: on the table made here the key is the only unique index, and a table
        # partitioned by event time (docs/backends/postgresql.md), whose primary key must be
        # (key, event time), works unchanged.
        move = "INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY {} ON CONFLICT DO NOTHING"
        insert = sql.SQL(move).format(
            self.table,
            sql.SQL(", ").join(names),
            sql.SQL(", ").join(selected),
            staging,
            self.key,
        )
        return [create, copy, insert], types

    def quarantine_staging(self) -> list[sql.Composed]:
        staging = sql.Identifier("pg_temp", REJECTED_TABLE)
        return [
            sql.SQL(
                "CREATE TEMP TABLE {} (id text, reason text, raw text, received_at timestamptz) "
                "ON COMMIT DROP"
            ).format(staging),
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(staging, _QUARANTINE_COLUMNS),
            sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY id ON CONFLICT DO NOTHING"
            ).format(self.quarantine, _QUARANTINE_COLUMNS, _QUARANTINE_COLUMNS, staging),
        ]


def unique_rows(rows: Sequence[tuple[Any, ...]], key: int) -> list[tuple[Any, ...]]:
    """The batch without later duplicates of a key: the first delivery of an event wins."""
    seen: set[Any] = set()
    unique = []
    for row in rows:
        if row[key] not in seen:
            seen.add(row[key])
            unique.append(row)
    return unique


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a quarantined event must still be kept, so it is replaced
    # like undecodable bytes are.
    return value.replace("\x00", "\ufffd")


def quarantine_rows(rejected: Sequence[Rejected]) -> list[tuple[str, str, str, datetime]]:
    unique: dict[str, Rejected] = {}
    for item in rejected:
        unique.setdefault(item.key, item)
    return [
        (
            _text(r.key),
            _text(r.reason),
            _text(r.raw.decode("utf-8", errors="replace")),
            utc(r.received_at),
        )
        for r in unique.values()
    ]


QUARANTINE_TYPES = ["text", "text", "text", "timestamptz"]


# --- errors ---------------------------------------------------------------------------------

# Errors caused by the rows themselves (SQLSTATE classes 22 and 23, and values the driver cannot
# encode, such as NUL in text): retrying cannot help.
_TERMINAL = (psycopg.DataError, psycopg.IntegrityError, OverflowError, TypeError, ValueError)


def sort_error(dataset: Dataset, exc: Exception) -> Exception:
    """The store error a write failure becomes; anything unknown is treated as transient.

    Connection loss, admin shutdown, too many connections, serialization failures and deadlocks
    are all OperationalError in psycopg, so they land on the transient side.
    """
    what = f"dataset {dataset.name!r}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _TERMINAL):
        return TerminalStoreError(f"cannot store this batch in {what}")
    return TransientStoreError(f"write failed, will retry, {what}")


def is_unavailable(exc: BaseException) -> bool:
    """A failure that means the server cannot answer now, not that the query is wrong."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
