"""SQL for the PostgreSQL store, composed with psycopg.sql; row conversion and error sorting.

Identifiers (schema, tables, columns) come from the dataset declaration and are always quoted
with `sql.Identifier`; values are always bound as parameters. Statements that do not depend on a
query are composed once per dataset (`Statements`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from slipstream.datasets import Dataset, FieldSpec, FieldType
from slipstream.errors import TerminalStoreError, TransientStoreError
from slipstream.events import EXTRA_COLUMN, PROBE_ID_PREFIX, RECEIVED_COLUMN, Rejected
from slipstream.stores import ListQuery, QuarantinedEvent, StatsQuery
from slipstream.stores.values import POSTGRES, stored_json, stored_time, time_param

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
BUCKETS = frozenset({"minute", "hour", "day"})
_UTC = sql.SQL("AT TIME ZONE 'UTC'")
_QUARANTINE_COLUMNS = sql.SQL("id, reason, raw, received_at")


def utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def field_type_of_column(udt_name: str) -> FieldType | None:
    return _FIELD_TYPES.get(udt_name)


def _object_name(dataset: Dataset, suffix: str) -> str:
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
    """Everything about one dataset in one schema that does not depend on a query."""

    def __init__(self, schema: str, dataset: Dataset) -> None:
        self.dataset = dataset
        self.schema = schema
        self.table = sql.Identifier(schema, dataset.name)
        self.quarantine = sql.Identifier(schema, f"{dataset.name}__quarantine")
        self.time = sql.Identifier(dataset.event_time)
        self.key = sql.Identifier(dataset.key)
        # Leaves synthetic probe events out of lists, stats and counts: a prefix test of the
        # key, cheap next to the scan, where a marker inside the row would cost a JSON lookup.
        self.not_probe = sql.SQL("NOT starts_with({}, {})").format(
            self.key, sql.Literal(PROBE_ID_PREFIX)
        )
        self.names = (*dataset.field_names, EXTRA_COLUMN)
        self._times = tuple(i for i, f in enumerate(dataset.fields) if f.type == "timestamp")
        self._json = (
            *(i for i, f in enumerate(dataset.fields) if f.type == "json"),
            len(dataset.fields),  # extra
        )
        self.key_index = dataset.field_names.index(dataset.key)
        columns = [self._select(f) for f in dataset.fields]
        columns.append(sql.SQL("{}::text").format(sql.Identifier(EXTRA_COLUMN)))
        self.select = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), self.table)
        self.get = sql.SQL("{} WHERE {} = ANY(%s)").format(self.select, self.key)

    @staticmethod
    def _select(spec: FieldSpec) -> sql.Composable:
        # Naive UTC and JSON text come back the same whatever the session's TimeZone, and
        # orjson parses faster than the driver's json.loads.
        column = sql.Identifier(spec.name)
        if spec.type == "timestamp":
            return sql.SQL("{} {}").format(column, _UTC)
        if spec.type == "json":
            return sql.SQL("{}::text").format(column)
        return column

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
                sql.Identifier(_object_name(self.dataset, "quarantine_received")), self.quarantine
            ),
        ]

    def create_indexes(self) -> list[sql.Composed]:
        """The keyset list and time ranges; each enum field followed by the same order."""
        order = sql.SQL("{} DESC, {} DESC").format(self.time, self.key)
        statements = [
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(_object_name(self.dataset, "time")), self.table, order
            )
        ]
        for spec in indexed_fields(self.dataset):
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}, {})").format(
                    sql.Identifier(_object_name(self.dataset, spec.name)),
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

    # --- reads --------------------------------------------------------------------------------

    def event(self, row: tuple[Any, ...]) -> dict[str, Any]:
        event = dict(zip(self.names, row, strict=True))
        for i in self._times:
            if row[i] is not None:
                event[self.names[i]] = stored_time(row[i])
        for i in self._json:
            if row[i] is not None:
                event[self.names[i]] = stored_json(row[i])
        return event

    def _declared(self, name: str) -> FieldSpec:
        spec = self.dataset.field(name)
        if spec is None:
            raise ValueError(f"dataset {self.dataset.name!r} has no field {name!r}")
        if spec.type == "json":
            raise ValueError(f"field {name!r} is json and cannot be filtered or grouped on")
        return spec

    def _where(
        self, filters: dict[str, Any], since: datetime | None, until: datetime | None
    ) -> tuple[list[sql.Composable], list[Any]]:
        """The WHERE terms a list and a stats query share: no probes, time range, filters."""
        where: list[sql.Composable] = [self.not_probe]
        params: list[Any] = []
        for operator, stamp in ((">=", since), ("<", until)):
            if stamp is not None:
                where.append(sql.SQL("{} " + operator + " %s").format(self.time))
                params.append(utc(stamp))
        for name, value in filters.items():
            column = sql.Identifier(self._declared(name).name)
            if value is None:
                where.append(sql.SQL("{} IS NULL").format(column))
            else:
                where.append(sql.SQL("{} = %s").format(column))
                params.append(utc(value) if isinstance(value, datetime) else value)
        return where, params

    def list_query(self, query: ListQuery) -> tuple[sql.Composed, list[Any]]:
        where, params = self._where(query.filters, query.since, query.until)
        if query.after is not None:
            # A row comparison the (event time, key) indexes answer as one range.
            where.append(sql.SQL("({}, {}) < (%s, %s)").format(self.time, self.key))
            params += [time_param(query.after[0], POSTGRES), query.after[1]]
        statement = sql.SQL("{} WHERE {}").format(self.select, sql.SQL(" AND ").join(where))
        params.append(max(query.limit, 0))
        order = sql.SQL("{} ORDER BY {} DESC, {} DESC LIMIT %s")
        return order.format(statement, self.time, self.key), params

    def stats_query(
        self, query: StatsQuery, *, exact: bool = False
    ) -> tuple[sql.Composed, list[Any], list[str]]:
        """SQL, parameters and the output names of its columns; `exact` averages floats in
        numeric, which cannot overflow."""
        if query.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {sorted(BUCKETS)}")
        where, params = self._where(query.filters, query.since, query.until)
        columns: list[sql.Composable] = [
            sql.SQL("date_trunc({}, {} {})").format(sql.Literal(query.bucket), self.time, _UTC)
        ]
        names = ["bucket"]
        if query.group_by is not None:
            columns.append(self._select(self._declared(query.group_by)))
            names.append("group")
        columns.append(sql.SQL("count(*)"))
        names.append("count")
        for spec in self.dataset.fields:
            if spec.type in ("int", "float"):
                numeric = "::numeric" if exact and spec.type == "float" else ""
                column = sql.SQL("{}" + numeric).format(sql.Identifier(spec.name))
                columns.append(sql.SQL("avg({})::double precision").format(column))
                names.append(f"avg_{spec.name}")
        keys = sql.SQL("1, 2" if query.group_by is not None else "1")
        statement = sql.SQL("SELECT {} FROM {} WHERE {} GROUP BY {} ORDER BY {}").format(
            sql.SQL(", ").join(columns), self.table, sql.SQL(" AND ").join(where), keys, keys
        )
        return statement, params, names

    def stats_row(
        self, query: StatsQuery, names: list[str], row: tuple[Any, ...]
    ) -> dict[str, Any]:
        result = dict(zip(names, row, strict=True))
        result["bucket"] = stored_time(result["bucket"])
        if query.group_by is not None:
            spec = self._declared(query.group_by)
            if spec.type == "timestamp" and result["group"] is not None:
                result["group"] = stored_time(result["group"])
        return result

    def quarantine_query(
        self, after: tuple[datetime, str] | None, ids: Sequence[str] | None, limit: int
    ) -> tuple[sql.Composed, list[Any]]:
        """Quarantined events oldest first, after a keyset position and/or among `ids`."""
        where: list[sql.Composable] = []
        params: list[Any] = []
        if after is not None:
            where.append(sql.SQL("(received_at, id) > (%s, %s)"))
            params += [utc(after[0]), after[1]]
        if ids is not None:
            where.append(sql.SQL("id = ANY(%s)"))
            params.append(list(ids))
        statement = sql.SQL("SELECT id, reason, raw, received_at {} FROM {}").format(
            _UTC, self.quarantine
        )
        if where:
            statement = sql.SQL("{} WHERE {}").format(statement, sql.SQL(" AND ").join(where))
        params.append(max(limit, 0))
        return sql.SQL("{} ORDER BY received_at, id LIMIT %s").format(statement), params

    def summary(self) -> sql.Composed:
        return sql.SQL(
            "SELECT (SELECT count(*) FROM {t} WHERE {p}), (SELECT count(*) FROM {q}), "
            "(SELECT max({time}) {utc} FROM {t} WHERE {p}), "
            "(SELECT max(_stored_at) {utc} FROM {t} WHERE {p})"
        ).format(t=self.table, p=self.not_probe, q=self.quarantine, time=self.time, utc=_UTC)

    def expire(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE {} < %s").format(self.table, self.time)

    def release(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self.quarantine)


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


def quarantined_event(row: tuple[Any, ...]) -> QuarantinedEvent:
    return QuarantinedEvent(row[0], row[1], row[2], row[3].replace(tzinfo=UTC))


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
