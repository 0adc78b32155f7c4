"""The query layer shared by the SQL stores: one statement per query shape, in each dialect.

The stores run these statements for real in tests/contracts (DuckDB, PostgreSQL) and
tests/unit/test_bigquery_store.py (BigQuery's text); here: what is cached, and what a dialect
changes in the SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slipstream.datasets import Dataset
from slipstream.stores import ListQuery, StatsQuery
from slipstream.stores.dialects import BIGQUERY, DUCKDB, POSTGRES, SqlDialect
from slipstream.stores.reads import SHAPES, Reads, reads_for

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
CLICKHOUSE = SqlDialect(
    sqlglot="clickhouse",
    times=None,
    naive_utc=False,
    json_text="cast",
    row_values=True,
    membership="any",
    limit_literal=False,
    unique_keys=False,
    param_types={"timestamp": "DateTime64(6, 'UTC')"},
)


def test_a_statement_is_built_once_per_shape_and_only_values_change(flights: Dataset) -> None:
    reads = Reads(DUCKDB, flights, ())
    first = reads.list(ListQuery(limit=10, filters={"status": "landed"}, since=T0))
    again = reads.list(ListQuery(limit=50, filters={"status": "delayed"}, since=T0))
    other = reads.list(ListQuery(limit=10, filters={"status": None}, since=T0))

    assert again.statement is first.statement
    assert again.params == {"since": T0, "f0": "delayed", "limit": 50}
    assert other.statement is not first.statement  # IS NULL is another shape
    assert "IS NULL" in other.sql
    stats = reads.stats(StatsQuery(bucket="day", group_by="status"))
    assert reads.stats(StatsQuery(bucket="day", group_by="status")).statement is stats.statement
    assert reads.stats(StatsQuery(bucket="day"), exact=True).statement is not stats.statement


def test_the_cache_of_shapes_is_bounded(flights: Dataset) -> None:
    reads = Reads(POSTGRES, flights, ("public",))
    names = [f.name for f in flights.fields if f.type != "json"]
    for n in range(SHAPES + 40):
        filters = {name: (None if n >> i & 1 else "x") for i, name in enumerate(names)}
        reads.list(ListQuery(filters=filters))

    assert reads._list.cache_info().currsize == SHAPES


def test_reads_are_made_again_when_the_declaration_changes(flights: Dataset) -> None:
    cache: dict[str, Reads] = {}
    first = reads_for(cache, DUCKDB, flights)
    assert reads_for(cache, DUCKDB, flights) is first
    more = flights.model_copy(update={"description": "changed"})
    assert reads_for(cache, DUCKDB, more) is not first


def test_each_dialect_writes_the_same_list_its_own_way(flights: Dataset) -> None:
    query = ListQuery(limit=5, after=(T0, "ev-9"), exclude_key_prefix="probe-")
    duckdb, postgres, bigquery = (
        Reads(dialect, flights, namespace).list(query).sql
        for dialect, namespace in (
            (DUCKDB, ()),
            (POSTGRES, ("s",)),
            (BIGQUERY, ("my-project", "events")),
        )
    )

    assert "\"event_time\" AT TIME ZONE 'UTC'" in duckdb
    assert '("event_time" <= $after_time AND ("event_time" < $after_time' in duckdb
    assert 'NOT STARTS_WITH("id", $prefix)' in duckdb
    assert duckdb.endswith('ORDER BY "event_time" DESC, "id" DESC LIMIT $limit')
    assert 'FROM "s"."flights"' in postgres
    assert '("event_time", "id") < (%(after_time)s, %(after_key)s)' in postgres
    assert postgres.endswith("LIMIT %(limit)s")
    assert "FROM `my-project`.`events`.`flights`" in bigquery
    assert "TO_JSON_STRING(`extra`)" in bigquery
    assert bigquery.endswith("LIMIT 5")


def test_a_fourth_dialect_is_data_only(flights: Dataset) -> None:
    reads = Reads(CLICKHOUSE, flights, ("slipstream",))
    since = T0 - timedelta(days=1)

    listed = reads.list(ListQuery(since=since, after=(T0, "ev-9"), exclude_key_prefix="probe-"))
    stats = reads.stats(StatsQuery(bucket="hour", group_by="status"))

    assert "{since: DateTime64(6, 'UTC')}" in listed.sql
    assert 'NOT startsWith("id", {prefix: String})' in listed.sql
    assert listed.sql.endswith("LIMIT {limit: Int64}")
    assert stats.sql.startswith('SELECT dateTrunc(\'HOUR\', "event_time"), "status", COUNT(*)')
    assert 'has({ids: Array(String)}, "id")' in reads.get(["a"]).sql
    assert reads.get(["a"]).sql.endswith('ORDER BY "_stored_at" ASC')
