"""SQL text, Arrow schemas and error sorting for the DuckDB store.

Only identifiers from the dataset declaration are written into SQL (quoted); values are always
bound as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from slipstream.datasets import Dataset, FieldSpec, FieldType
from slipstream.errors import TerminalStoreError, TransientStoreError
from slipstream.events import (
    EXTRA_COLUMN,
    PROBE_ID_PREFIX,
    RECEIVED_COLUMN,
    EventRows,
    Rejected,
)
from slipstream.stores import ListQuery, QuarantinedEvent, StatsQuery
from slipstream.stores.values import DUCKDB, stored_json, stored_time, time_param

FIELDS_TABLE = "_slipstream_fields"
BATCH_VIEW = "_slipstream_batch"
QUARANTINE_VIEW = "_slipstream_rejected"
SQL_TYPES: dict[FieldType, str] = {
    "string": "VARCHAR",
    "enum": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "json": "JSON",
}
# Reading a table created before the metadata table existed: column type → field type.
_FIELD_TYPES: dict[str, FieldType] = {
    "VARCHAR": "string",
    "BIGINT": "int",
    "DOUBLE": "float",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "JSON": "json",
}
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "string": pa.string(),
    "enum": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": _TIMESTAMP,
    "json": pa.string(),
}
_BUCKETS = frozenset({"minute", "hour", "day"})
# Errors that say nothing about the data: the same write may succeed later.
_TRANSIENT = (
    duckdb.OperationalError,  # IO, connection, transaction conflict, out of memory
    duckdb.InterruptException,
    duckdb.FatalException,
    duckdb.InternalError,
)
# Errors caused by the rows themselves: retrying cannot help.
_TERMINAL = (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)
_BAD_VALUES = (pa.ArrowException, OverflowError, TypeError, ValueError)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quarantine_table(dataset: Dataset) -> str:
    return quote(f"{dataset.name}__quarantine")


def create_fields_table() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} (dataset VARCHAR, field VARCHAR, "
        "type VARCHAR, PRIMARY KEY (dataset, field))"
    )


def record_field() -> str:
    return f"INSERT OR REPLACE INTO {FIELDS_TABLE} (dataset, field, type) VALUES (?, ?, ?)"


def field_type_of_column(sql_type: str) -> FieldType | None:
    return _FIELD_TYPES.get(sql_type.upper())


def create_table(dataset: Dataset) -> list[str]:
    columns = [f"{quote(f.name)} {SQL_TYPES[f.type]}" for f in dataset.fields]
    columns += [
        f"{quote(EXTRA_COLUMN)} JSON",
        f"{quote(RECEIVED_COLUMN)} TIMESTAMPTZ",
        '"_stored_at" TIMESTAMPTZ DEFAULT current_timestamp',
        f"PRIMARY KEY ({quote(dataset.key)})",
    ]
    return [
        f"CREATE TABLE {quote(dataset.name)} ({', '.join(columns)})",
        create_quarantine(dataset),
    ]


def create_quarantine(dataset: Dataset) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quarantine_table(dataset)} (id VARCHAR PRIMARY KEY, "
        "reason VARCHAR, raw VARCHAR, received_at TIMESTAMPTZ)"
    )


def add_column(dataset: Dataset, spec: FieldSpec) -> str:
    return f"ALTER TABLE {quote(dataset.name)} ADD COLUMN {quote(spec.name)} {SQL_TYPES[spec.type]}"


# --- writes ---------------------------------------------------------------------------------


def rows_table(dataset: Dataset, rows: EventRows) -> pa.Table:
    """The batch as an Arrow table with the store's column types; later duplicates dropped."""
    types = {f.name: _ARROW_TYPES[f.type] for f in dataset.fields}
    types[EXTRA_COLUMN] = pa.string()
    types[RECEIVED_COLUMN] = _TIMESTAMP
    unknown = [c for c in rows.columns if c not in types]
    if unknown:
        raise ValueError(f"columns {unknown} are not declared")
    key = rows.columns.index(dataset.key)
    seen: set[Any] = set()
    unique = []
    for row in rows.rows:
        if row[key] not in seen:
            seen.add(row[key])
            unique.append(row)
    values = list(zip(*unique, strict=True)) if unique else [() for _ in rows.columns]
    arrays = [pa.array(v, type=types[c]) for c, v in zip(rows.columns, values, strict=True)]
    return pa.Table.from_arrays(arrays, names=list(rows.columns))


def insert_rows(dataset: Dataset, rows: EventRows) -> str:
    names = ", ".join(quote(c) for c in rows.columns)
    return (
        f"INSERT INTO {quote(dataset.name)} ({names}) SELECT {names} FROM {BATCH_VIEW} "
        "ON CONFLICT DO NOTHING"
    )


def quarantine_rows(rejected: Sequence[Rejected]) -> pa.Table:
    unique: dict[str, Rejected] = {}
    for item in rejected:
        unique.setdefault(item.key, item)
    items = list(unique.values())
    return pa.table(
        {
            "id": pa.array([r.key for r in items], pa.string()),
            "reason": pa.array([r.reason for r in items], pa.string()),
            "raw": pa.array([r.raw.decode("utf-8", errors="replace") for r in items], pa.string()),
            "received_at": pa.array([r.received_at for r in items], _TIMESTAMP),
        }
    )


def insert_quarantine(dataset: Dataset) -> str:
    return (
        f"INSERT INTO {quarantine_table(dataset)} (id, reason, raw, received_at) "
        f"SELECT id, reason, raw, received_at FROM {QUARANTINE_VIEW} ON CONFLICT DO NOTHING"
    )


def sort_error(dataset: Dataset, exc: Exception) -> Exception:
    """The store error a write failure becomes; anything unknown is treated as transient."""
    what = f"dataset {dataset.name!r}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _TERMINAL + _BAD_VALUES):
        return TerminalStoreError(f"cannot store this batch in {what}")
    return TransientStoreError(f"write failed, will retry, {what}")


def is_unavailable(exc: Exception) -> bool:
    """A read failure that means the database cannot answer now, not that the query is wrong."""
    return isinstance(exc, _TRANSIENT)


# --- reads ----------------------------------------------------------------------------------


def utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def _select(spec: FieldSpec) -> str:
    # TIMESTAMPTZ values come back as naive UTC, so reading them needs no time zone library
    # and does not depend on the session's TimeZone.
    if spec.type == "timestamp":
        return f"timezone('UTC', {quote(spec.name)})"
    return quote(spec.name)


def _convert(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "timestamp":
        # DuckDB's driver gives the text of a time a datetime cannot hold (years past 9999, BC).
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else stored_time(value)
    if spec.type == "json":
        return stored_json(value)
    return value


def event_select(dataset: Dataset) -> str:
    columns = [_select(f) for f in dataset.fields] + [quote(EXTRA_COLUMN)]
    return f"SELECT {', '.join(columns)} FROM {quote(dataset.name)}"


def event_dict(dataset: Dataset, row: tuple[Any, ...]) -> dict[str, Any]:
    event = {f.name: _convert(f, v) for f, v in zip(dataset.fields, row, strict=False)}
    extra = row[-1]
    event[EXTRA_COLUMN] = stored_json(extra) if extra is not None else None
    return event


def _declared(dataset: Dataset, name: str) -> FieldSpec:
    spec = dataset.field(name)
    if spec is None:
        raise ValueError(f"dataset {dataset.name!r} has no field {name!r}")
    return spec


def _time_range(
    dataset: Dataset, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    column = quote(dataset.event_time)
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(utc(since))
    if until is not None:
        where.append(f"{column} < ?")
        params.append(utc(until))
    return where, params


def not_probe(dataset: Dataset) -> str:
    """Leaves synthetic probe events out of lists, stats and counts: a prefix test of the key,
    cheap next to the scan, where a marker inside the row would cost a JSON lookup per row."""
    return f"NOT starts_with({quote(dataset.key)}, '{PROBE_ID_PREFIX}')"


def has_probe_query(dataset: Dataset) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {quote(dataset.name)} WHERE NOT ({not_probe(dataset)}))"


def _filter(dataset: Dataset, filters: dict[str, Any], where: list[str], params: list[Any]) -> None:
    """Adds the equality filters of a list or stats query to its WHERE terms."""
    for name, value in filters.items():
        spec = _declared(dataset, name)
        if spec.type == "json":
            raise ValueError(f"field {name!r} is json and cannot be filtered on")
        if value is None:
            where.append(f"{quote(name)} IS NULL")
        else:
            where.append(f"{quote(name)} = ?")
            params.append(utc(value) if isinstance(value, datetime) else value)


def list_query(dataset: Dataset, query: ListQuery, *, probes: bool = True) -> tuple[str, list[Any]]:
    """`probes`: whether the table may hold probe events; without any, the test of every
    row's key is left out (a third of a list's time on DuckDB, which must read every key)."""
    where, params = _time_range(dataset, query.since, query.until)
    if probes:
        where.append(not_probe(dataset))
    _filter(dataset, query.filters, where, params)
    time, key = quote(dataset.event_time), quote(dataset.key)
    if query.after is not None:
        stamp, last = time_param(query.after[0], DUCKDB), query.after[1]
        # The first term lets DuckDB skip row groups by their min/max event time.
        where.append(f"{time} <= ? AND ({time} < ? OR {key} < ?)")
        params += [stamp, stamp, last]
    sql = event_select(dataset)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {time} DESC, {key} DESC LIMIT ?"
    params.append(max(query.limit, 0))
    return sql, params


def stats_query(
    dataset: Dataset, query: StatsQuery, *, probes: bool = True
) -> tuple[str, list[Any], list[str]]:
    """SQL, parameters and the output names of its columns."""
    if query.bucket not in _BUCKETS:
        raise ValueError(f"bucket must be one of {sorted(_BUCKETS)}")
    where, params = _time_range(dataset, query.since, query.until)
    if probes:
        where.append(not_probe(dataset))
    _filter(dataset, query.filters, where, params)
    time = f"timezone('UTC', {quote(dataset.event_time)})"
    columns = [f"date_trunc('{query.bucket}', {time}) AS bucket"]
    names = ["bucket"]
    if query.group_by is not None:
        columns.append(f"{_select(_declared(dataset, query.group_by))} AS grp")
        names.append("group")
    columns.append("count(*)")
    names.append("count")
    for spec in dataset.fields:
        if spec.type in ("int", "float"):
            columns.append(f"avg({quote(spec.name)})")
            names.append(f"avg_{spec.name}")
    keys = "bucket, grp" if query.group_by is not None else "bucket"
    sql = f"SELECT {', '.join(columns)} FROM {quote(dataset.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" GROUP BY {keys} ORDER BY {keys} NULLS LAST"
    return sql, params, names


def stats_dict(
    dataset: Dataset, query: StatsQuery, names: list[str], row: tuple[Any, ...]
) -> dict[str, Any]:
    result = dict(zip(names, row, strict=True))
    result["bucket"] = stored_time(result["bucket"])
    if query.group_by is not None:
        result["group"] = _convert(_declared(dataset, query.group_by), result["group"])
    return result


QUARANTINE_SELECT = "SELECT id, reason, raw, timezone('UTC', received_at) FROM "


def quarantined_event(row: tuple[Any, ...]) -> QuarantinedEvent:
    return QuarantinedEvent(row[0], row[1], row[2], row[3].replace(tzinfo=UTC))


def quarantine_query(
    dataset: Dataset, after: tuple[datetime, str] | None, ids: Sequence[str] | None, limit: int
) -> tuple[str, list[Any]]:
    """Quarantined events oldest first, after a keyset position and/or among `ids`."""
    where: list[str] = []
    params: list[Any] = []
    if after is not None:
        stamp = utc(after[0])
        where.append("received_at >= ? AND (received_at > ? OR id > ?)")
        params += [stamp, stamp, after[1]]
    if ids is not None:
        where.append("id = ANY(?)")
        params.append(list(ids))
    sql = QUARANTINE_SELECT + quarantine_table(dataset)
    if where:
        sql += " WHERE " + " AND ".join(where)
    params.append(max(limit, 0))
    return sql + " ORDER BY received_at, id LIMIT ?", params


def summary_query(dataset: Dataset, *, probes: bool = True) -> str:
    table, time = quote(dataset.name), quote(dataset.event_time)
    rows = f"{table} WHERE {not_probe(dataset)}" if probes else table
    return (
        f"SELECT (SELECT count(*) FROM {rows}), "
        f"(SELECT count(*) FROM {quarantine_table(dataset)}), "
        f"(SELECT timezone('UTC', max({time})) FROM {rows}), "
        f"(SELECT timezone('UTC', max(_stored_at)) FROM {rows})"
    )
