"""Names, table schemas, Parquet batches and error sorting for the BigQuery store.

Nothing here talks to BigQuery: the URL, the tables Slipstream makes, the mapping of field types
to column types and back (for migrations), the staged batch, and which failures are transient.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud.bigquery import (
    ScalarQueryParameter,
    SchemaField,
    Table,
    TimePartitioning,
    TimePartitioningType,
)
from pydantic import field_validator

from slipstream.arrow_types import ARROW_TYPES, TEXT, TIMESTAMP
from slipstream.datasets import RESERVED_COLUMNS, Dataset, DatasetError, FieldSpec, FieldType
from slipstream.errors import ConfigError, TerminalStoreError, TransientStoreError
from slipstream.events import EXTRA_COLUMN, RECEIVED_COLUMN, EventRows, Rejected
from slipstream.options import BackendOptions
from slipstream.registry import shown_url
from slipstream.stores import VARIABLE
from slipstream.stores.values import utc

STORED_COLUMN = "_stored_at"
QUARANTINE_SUFFIX, STAGING_INFIX = "__quarantine", "__staging_"
# field type → BigQuery column type; staged as arrow_types.ARROW_TYPES (json as text, PARSE_JSON'd)
BQ_TYPES: dict[FieldType, str] = {
    "string": "STRING",
    "enum": "STRING",
    "int": "INT64",
    "float": "FLOAT64",
    "bool": "BOOL",
    "timestamp": "TIMESTAMP",
    "json": "JSON",
}
# Back from a table's schema; the API answers with legacy names (INTEGER, FLOAT, BOOLEAN).
_LEGACY: dict[str, FieldType] = {"INTEGER": "int", "FLOAT": "float", "BOOLEAN": "bool"}
_FIELD_TYPES = {**{bq: kind for kind, bq in BQ_TYPES.items() if kind != "enum"}, **_LEGACY}
_QUARANTINE = (
    ("id", "STRING"),
    ("reason", "STRING"),
    ("raw", "STRING"),
    ("received_at", "TIMESTAMP"),
)
_CLUSTERABLE = frozenset({"string", "enum", "int", "bool"})
MAX_CLUSTER_FIELDS = 4  # BigQuery's limit
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
# Project ids: 6-30 of a-z 0-9 -, optionally domain scoped ("example.com:my-project").
_PROJECT = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BUSY = frozenset({"rateLimitExceeded", "quotaExceeded", "backendError", "jobRateLimitExceeded"})
# Failures that say nothing about the rows: the same call may succeed later. ServerError is every
# 5xx (DeadlineExceeded included); OSError covers ConnectionError, requests' errors and the
# TimeoutError of job.result(timeout).
TRANSIENT = (gexc.ServerError, gexc.TooManyRequests, gexc.RetryError, OSError)
_AUTH = (auth_exc.TransportError, auth_exc.RefreshError)
# Building the Parquet batch failed on a value: the rows themselves are at fault.
_BAD_VALUES = (pa.ArrowException, OverflowError, TypeError, ValueError)


def quote(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} cannot be a BigQuery column or table name")
    return f"`{name}`"


@dataclass(frozen=True, slots=True)
class Target:
    """`bigquery://PROJECT/DATASET[?location=EU]`."""

    project: str
    dataset: str
    location: str | None = None

    def ref(self, table: str) -> str:
        """`project.dataset.table`, as the client's API calls take it."""
        quote(table)
        return f"{self.project}.{self.dataset}.{table}"

    def sql(self, table: str) -> str:
        """The table as written in SQL, each part backquoted."""
        return f"`{self.project}`.`{self.dataset}`.{quote(table)}"


class BigQueryOptions(BackendOptions):
    """`bigquery://PROJECT/DATASET?location=EU` (docs/backends/bigquery.md)."""

    location: str | None = None  # where jobs run and a new dataset is made; empty: unset

    @field_validator("location")
    @classmethod
    def _empty_is_unset(cls, location: str | None) -> str | None:
        return location or None


def parse_url(url: str) -> Target:
    where = f"{VARIABLE}={shown_url(url)!r}"
    parts = urlsplit(url)
    project, dataset = parts.netloc, parts.path.strip("/")
    if not project or not dataset or "/" in dataset:
        raise ConfigError(f"{where}: expected bigquery://PROJECT/DATASET[?location=EU]")
    if not _PROJECT.match(project):
        raise ConfigError(f"{where}: {project!r} is not a Google Cloud project id")
    if not _DATASET.match(dataset):
        raise ConfigError(f"{where}: dataset {dataset!r} may hold only letters, digits and _")
    return Target(project, dataset, BigQueryOptions.from_url(url, VARIABLE).location)


def quarantine_name(dataset: Dataset) -> str:
    return dataset.name + QUARANTINE_SUFFIX


def staging_name(table: str, token: str) -> str:
    return f"{table}{STAGING_INFIX}{token}"


# --- schemas ----------------------------------------------------------------------------------


def _column(spec: FieldSpec) -> SchemaField:
    return SchemaField(spec.name, BQ_TYPES[spec.type], "NULLABLE", description=spec.description)


def _reserved_columns() -> list[SchemaField]:
    return [
        SchemaField(EXTRA_COLUMN, "JSON", description="Fields the dataset does not declare."),
        SchemaField(RECEIVED_COLUMN, "TIMESTAMP", description="When Slipstream received it."),
        SchemaField(STORED_COLUMN, "TIMESTAMP", description="When the write committed."),
    ]


def table_schema(dataset: Dataset) -> list[SchemaField]:
    """Every column NULLABLE: the codec enforces `required`, and BigQuery can relax a mode
    but never tighten it, so a later change of `required` stays possible."""
    return [_column(spec) for spec in dataset.fields] + _reserved_columns()


def cluster_fields(dataset: Dataset) -> list[str]:
    """The key first (GET by id has no time range), then enum fields, then other filterable
    fields in declaration order, up to BigQuery's four."""
    rest = [f for f in dataset.fields if f.name not in (dataset.key, dataset.event_time)]
    enums = [f.name for f in rest if f.type == "enum"]
    others = [f.name for f in rest if f.type in _CLUSTERABLE and f.type != "enum"]
    return [dataset.key, *enums, *others][:MAX_CLUSTER_FIELDS]


def new_table(target: Target, dataset: Dataset) -> Table:
    table = Table(target.ref(dataset.name), schema=table_schema(dataset))
    table.time_partitioning = TimePartitioning(
        type_=TimePartitioningType.DAY, field=dataset.event_time
    )
    table.clustering_fields = cluster_fields(dataset)
    table.description = dataset.description or None
    return table


def quarantine_schema() -> list[SchemaField]:
    return [SchemaField(name, kind) for name, kind in _QUARANTINE]


def new_quarantine_table(target: Target, dataset: Dataset) -> Table:
    table = Table(target.ref(quarantine_name(dataset)), schema=quarantine_schema())
    table.clustering_fields = ["id"]
    table.description = f"Events of {dataset.name} that failed validation."
    return table


def _staged(dataset: Dataset) -> list[tuple[str, str, pa.DataType]]:
    """Columns of a staged batch: json travels as STRING (PARSE_JSON'd by the MERGE)."""
    columns = [(f.name, BQ_TYPES[f.type], ARROW_TYPES[f.type]) for f in dataset.fields]
    columns = [(n, "STRING" if t == "JSON" else t, a) for n, t, a in columns]
    return [*columns, (EXTRA_COLUMN, "STRING", TEXT), (RECEIVED_COLUMN, "TIMESTAMP", TIMESTAMP)]


def staging_schema(dataset: Dataset) -> list[SchemaField]:
    return [SchemaField(name, kind) for name, kind, _ in _staged(dataset)]


def stored_fields(dataset: Dataset, schema: Sequence[SchemaField]) -> dict[str, FieldType]:
    """Declared-field columns already in the table, as field types (STRING reads as string,
    which `schema_changes` lets an enum keep)."""
    stored: dict[str, FieldType] = {}
    for column in schema:
        if column.name in RESERVED_COLUMNS:
            continue
        kind = _FIELD_TYPES.get((column.field_type or "").upper())
        if kind is None or column.mode == "REPEATED":
            if dataset.field(column.name) is not None:
                raise DatasetError(
                    f"dataset {dataset.name!r}: column {column.name!r} is "
                    f"{column.mode} {column.field_type} in BigQuery, which no field type maps to"
                )
            continue
        stored[column.name] = kind
    return stored


def added_columns(
    dataset: Dataset, schema: Sequence[SchemaField], added: Sequence[FieldSpec]
) -> list[SchemaField]:
    """New NULLABLE columns for `added` fields, and any reserved column the table lacks."""
    have = {c.name for c in schema}
    columns = [_column(spec) for spec in added if spec.name not in have]
    return columns + [c for c in _reserved_columns() if c.name not in have]


# --- writes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    parquet: bytes
    rows: int
    params: list[Any] = field(default_factory=list)  # the MERGE's


def _parquet(columns: dict[str, pa.Array]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, compression="zstd")
    return sink.getvalue()


def rows_batch(dataset: Dataset, rows: EventRows) -> Batch:
    """The batch as Parquet in the staging schema, the first row of each id only (as in
    every store), and the batch's event-time range as the MERGE's parameters."""
    columns = _staged(dataset)
    if list(rows.columns) != [name for name, _, _ in columns]:
        raise ValueError(f"rows have columns {rows.columns}, not those of {dataset.name!r}")
    key, time = rows.columns.index(dataset.key), rows.columns.index(dataset.event_time)
    firsts: dict[Any, tuple[Any, ...]] = {}
    for row in rows.rows:
        firsts.setdefault(row[key], row)
    unique = list(firsts.values())
    _refuse_malformed_json(dataset, rows.columns, unique)
    values = list(zip(*unique, strict=True)) if unique else [() for _ in columns]
    arrays = {n: pa.array(v, type=a) for (n, _, a), v in zip(columns, values, strict=True)}
    first, last = (min(values[time]), max(values[time])) if unique else (None, None)
    params = [
        ScalarQueryParameter("first_time", "TIMESTAMP", first),
        ScalarQueryParameter("last_time", "TIMESTAMP", last),
    ]
    return Batch(_parquet(arrays), len(unique), params)


def _refuse_malformed_json(
    dataset: Dataset, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Refuse (terminally) a JSON document BigQuery could not parse. The MERGE's PARSE_JSON
    would fail on it with the same reason as a query the table no longer fits, which is
    transient: the batch would be retried until it is dead-lettered, a job spent each time."""
    json_fields = {f.name for f in dataset.fields if f.type == "json"} | {EXTRA_COLUMN}
    key = columns.index(dataset.key)
    for index, name in enumerate(columns):
        if name not in json_fields:
            continue
        for row in rows:
            if row[index] is None:
                continue
            try:
                orjson.loads(row[index])
            except orjson.JSONDecodeError as exc:
                raise ValueError(
                    f"{name!r} of event {row[key]!r} is not valid JSON: {exc}"
                ) from exc


def quarantine_batch(rejected: Sequence[Rejected]) -> Batch:
    unique: dict[str, Rejected] = {}
    for item in rejected:
        unique.setdefault(item.key, item)
    items = list(unique.values())
    raw = [r.raw.decode("utf-8", errors="replace") for r in items]
    received = pa.array([utc(r.received_at) for r in items], TIMESTAMP)
    columns = [[r.key for r in items], [r.reason for r in items], raw]
    arrays = {n: pa.array(v, TEXT) for (n, _), v in zip(_QUARANTINE, columns, strict=False)}
    return Batch(_parquet({**arrays, "received_at": received}), len(items))


def reasons(exc: BaseException) -> set[str]:
    """BigQuery's error reasons (`invalid`, `rateLimitExceeded`, …) carried by an API error."""
    if not isinstance(exc, gexc.GoogleAPICallError):
        return set()
    return {e["reason"] for e in exc.errors if isinstance(e, dict) and "reason" in e}


def is_unavailable(exc: BaseException) -> bool:
    """BigQuery cannot answer now (outage, rate limit, quota, network), not a wrong request."""
    if isinstance(exc, TRANSIENT + _AUTH):
        return True
    return isinstance(exc, gexc.Forbidden | gexc.BadRequest) and bool(reasons(exc) & _BUSY)


def sort_error(dataset: Dataset, exc: Exception) -> Exception:
    """The store error a write failure becomes. Only a value BigQuery refused (reason
    `invalid`) or one we could not encode is terminal; anything else — outages, quotas, missing
    permissions, SQL the table no longer fits — is transient, so no batch is dead-lettered for
    a fault an operator can fix."""
    what = f"dataset {dataset.name!r}: {type(exc).__name__}: {exc}"
    data_fault = isinstance(exc, gexc.BadRequest) and "invalid" in reasons(exc)
    if data_fault or isinstance(exc, _BAD_VALUES):
        return TerminalStoreError(f"cannot store this batch in {what}")
    return TransientStoreError(f"write failed, will retry, {what}")
