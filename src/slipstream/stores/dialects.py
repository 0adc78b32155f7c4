"""What tells the SQL databases apart, for the reads every SQL store shares (`stores/reads.py`).

A dialect is data: sqlglot's name for the database (sqlglot writes the SQL: quoting, parameter
markers, function names, null ordering) plus the few choices sqlglot cannot make for us, because
they depend on the driver or on how the store lays out its tables. A fourth SQL store adds one
`SqlDialect` here; docs/architecture.md walks through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from slipstream.stores.values import DUCKDB as DUCKDB_TIMES
from slipstream.stores.values import POSTGRES as POSTGRES_TIMES
from slipstream.stores.values import TimeLiterals


@dataclass(frozen=True, slots=True)
class SqlDialect:
    sqlglot: str  # sqlglot's dialect name: how the SQL is written
    # How the database writes times past the datetime range; None when it holds none.
    times: TimeLiterals | None
    # Read timestamps `AT TIME ZONE 'UTC'` (naive UTC, whatever the session's time zone) rather
    # than as the driver gives them (BigQuery's: UTC-aware already).
    naive_utc: bool
    # How a JSON column is read as its text: CAST(… AS TEXT), or TO_JSON_STRING (BigQuery, where
    # the cast only reads JSON strings).
    json_text: Literal["cast", "format"]
    # The keyset position as one row comparison, `(time, key) < (t, k)`, which PostgreSQL's
    # (time, key) indexes answer as one range; otherwise `time <= t AND (time < t OR key < k)`,
    # whose first term prunes partitions (BigQuery) or row groups (DuckDB).
    row_values: bool
    # `key = ANY(:ids)`, or `key IN UNNEST(:ids)` (BigQuery).
    membership: Literal["any", "unnest"]
    # LIMIT written as a number (BigQuery) rather than bound as a parameter.
    limit_literal: bool
    # False where a key may be stored twice (BigQuery's MERGE, under a race): reads by id then
    # come oldest write first, and the store keeps the first row of each id.
    unique_keys: bool
    # Where the parameter markers carry a type (ClickHouse's `{since: DateTime64(6)}`): the
    # types, in the dialect's own words, of the kinds whose default type would not fit.
    param_types: Mapping[str, str] = field(default_factory=dict)


DUCKDB = SqlDialect(
    sqlglot="duckdb",
    times=DUCKDB_TIMES,
    naive_utc=True,
    json_text="cast",
    row_values=False,  # DuckDB compares no row of a time with text (a position past 9999)
    membership="any",
    limit_literal=False,
    unique_keys=True,
)
POSTGRES = SqlDialect(
    sqlglot="postgres",
    times=POSTGRES_TIMES,
    naive_utc=True,
    json_text="cast",
    row_values=True,
    membership="any",
    limit_literal=False,
    unique_keys=True,
)
BIGQUERY = SqlDialect(
    sqlglot="bigquery",
    times=None,
    naive_utc=False,
    json_text="format",
    row_values=False,
    membership="unnest",
    limit_literal=True,
    unique_keys=False,
)
