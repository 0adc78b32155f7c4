"""SQL text for the BigQuery store: the MERGEs that write, and every read.

Identifiers are validated and backquoted (`quote`); every value travels as a query parameter
(the LIMIT is an int formatted here).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.cloud.bigquery import ArrayQueryParameter, ScalarQueryParameter

from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import EXTRA_COLUMN, PROBE_ID_PREFIX, RECEIVED_COLUMN
from slipstream.stores import ListQuery, QuarantinedEvent, StatsQuery
from slipstream.stores.bigquery_schema import (
    BQ_TYPES,
    STORED_COLUMN,
    Target,
    quarantine_name,
    quote,
    utc,
)
from slipstream.stores.values import stored_json

_BUCKETS = {"minute": "MINUTE", "hour": "HOUR", "day": "DAY"}


# --- writes -----------------------------------------------------------------------------------


def merge_rows(target: Target, dataset: Dataset, staging: str) -> str:
    """Insert the staged rows whose (key, event time) is not stored yet.

    The ON clause names the partitioning column twice: equal to the source row's (so a match
    needs the same event time) and between two constants (the batch's range, as parameters),
    which is what lets BigQuery read only the partitions the batch touches.
    """
    key, time = quote(dataset.key), quote(dataset.event_time)
    names = [*dataset.field_names, EXTRA_COLUMN, RECEIVED_COLUMN, STORED_COLUMN]
    values = []
    for spec in dataset.fields:
        values.append(_parse_json(spec.name) if spec.type == "json" else f"S.{quote(spec.name)}")
    values += [_parse_json(EXTRA_COLUMN), f"S.{quote(RECEIVED_COLUMN)}", "CURRENT_TIMESTAMP()"]
    return (
        f"MERGE {target.sql(dataset.name)} AS T\n"
        f"USING {target.sql(staging)} AS S\n"
        f"ON T.{key} = S.{key} AND T.{time} = S.{time}\n"
        f"  AND T.{time} BETWEEN @first_time AND @last_time\n"
        "WHEN NOT MATCHED THEN\n"
        f"  INSERT ({', '.join(quote(n) for n in names)})\n"
        f"  VALUES ({', '.join(values)})"
    )


def _parse_json(name: str) -> str:
    # 'round' keeps numbers a float64 cannot hold exactly instead of failing the whole batch.
    return f"PARSE_JSON(S.{quote(name)}, wide_number_mode => 'round')"


def merge_quarantine(target: Target, dataset: Dataset, staging: str) -> str:
    return (
        f"MERGE {target.sql(quarantine_name(dataset))} AS T\n"
        f"USING {target.sql(staging)} AS S\n"
        "ON T.id = S.id\n"
        "WHEN NOT MATCHED THEN\n"
        "  INSERT (id, reason, raw, received_at) VALUES (S.id, S.reason, S.raw, S.received_at)"
    )


# --- reads ------------------------------------------------------------------------------------


class Params:
    """Named query parameters, collected while a statement is written."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, kind: str, value: Any) -> str:
        name = f"p{len(self.items)}"
        self.items.append(ScalarQueryParameter(name, kind, value))
        return f"@{name}"

    def add_array(self, kind: str, values: Sequence[Any]) -> str:
        name = f"p{len(self.items)}"
        self.items.append(ArrayQueryParameter(name, kind, list(values)))
        return f"@{name}"


def _select(spec: FieldSpec) -> str:
    # JSON comes back as its text, parsed here: the client library's own conversion of JSON
    # cells has changed between versions (text, then parsed values).
    if spec.type == "json":
        return f"TO_JSON_STRING({quote(spec.name)})"
    return quote(spec.name)


def _convert(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "timestamp":
        return utc(value)
    if spec.type == "json":
        return stored_json(value)
    return value


def event_select(target: Target, dataset: Dataset) -> str:
    columns = [_select(f) for f in dataset.fields] + [f"TO_JSON_STRING({quote(EXTRA_COLUMN)})"]
    return f"SELECT {', '.join(columns)} FROM {target.sql(dataset.name)}"


def event_dict(dataset: Dataset, row: Sequence[Any]) -> dict[str, Any]:
    event = {f.name: _convert(f, v) for f, v in zip(dataset.fields, row, strict=False)}
    extra = row[len(dataset.fields)]
    event[EXTRA_COLUMN] = stored_json(extra) if extra is not None else None
    return event


def get_query(target: Target, dataset: Dataset, ids: Sequence[str]) -> tuple[str, list[Any]]:
    """Rows for `ids`: clustering on the key lets BigQuery skip most blocks without a time
    range. Oldest write first, so a caller keeping the first row per id is deterministic."""
    params = Params()
    wanted = params.add_array("STRING", ids)
    sql = (
        f"{event_select(target, dataset)} WHERE {quote(dataset.key)} IN UNNEST({wanted}) "
        f"ORDER BY {quote(STORED_COLUMN)}"
    )
    return sql, params.items


def _declared(dataset: Dataset, name: str) -> FieldSpec:
    spec = dataset.field(name)
    if spec is None:
        raise ValueError(f"dataset {dataset.name!r} has no field {name!r}")
    if spec.type == "json":
        raise ValueError(f"field {name!r} is json and cannot be filtered or grouped on")
    return spec


def _time_range(
    dataset: Dataset, params: Params, since: datetime | None, until: datetime | None
) -> list[str]:
    column = quote(dataset.event_time)
    where: list[str] = []
    if since is not None:
        where.append(f"{column} >= {params.add('TIMESTAMP', utc(since))}")
    if until is not None:
        where.append(f"{column} < {params.add('TIMESTAMP', utc(until))}")
    return where


def not_probe(dataset: Dataset) -> str:
    """Leaves synthetic probe events out of lists, stats and counts: a prefix test of the key
    (a constant of ours, written as a literal), where a marker inside the row would make every
    read scan a JSON column."""
    return f"NOT STARTS_WITH({quote(dataset.key)}, '{PROBE_ID_PREFIX}')"


def _filters(dataset: Dataset, params: Params, filters: dict[str, Any]) -> list[str]:
    """The equality filters of a list or stats query, as WHERE terms."""
    where: list[str] = []
    for name, value in filters.items():
        spec = _declared(dataset, name)
        if value is None:
            where.append(f"{quote(name)} IS NULL")
        else:
            value = utc(value) if isinstance(value, datetime) else value
            where.append(f"{quote(name)} = {params.add(BQ_TYPES[spec.type], value)}")
    return where


def list_query(target: Target, dataset: Dataset, query: ListQuery) -> tuple[str, list[Any]]:
    params = Params()
    where = _time_range(dataset, params, query.since, query.until)
    where += _filters(dataset, params, query.filters)
    time, key = quote(dataset.event_time), quote(dataset.key)
    if query.after is not None:
        stamp = params.add("TIMESTAMP", utc(query.after[0]))
        last = params.add("STRING", query.after[1])
        # The first term is a plain range on the partitioning column: it prunes partitions.
        where.append(f"{time} <= {stamp} AND ({time} < {stamp} OR {key} < {last})")
    where.append(not_probe(dataset))
    sql = event_select(target, dataset) + " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {time} DESC, {key} DESC LIMIT {max(int(query.limit), 0)}"
    return sql, params.items


def stats_query(
    target: Target, dataset: Dataset, query: StatsQuery
) -> tuple[str, list[Any], list[str]]:
    """SQL, parameters and the output names of its columns."""
    part = _BUCKETS.get(query.bucket)
    if part is None:
        raise ValueError(f"bucket must be one of {sorted(_BUCKETS)}")
    params = Params()
    where = [
        *_time_range(dataset, params, query.since, query.until),
        *_filters(dataset, params, query.filters),
        not_probe(dataset),
    ]
    columns = [f"TIMESTAMP_TRUNC({quote(dataset.event_time)}, {part}) AS bucket"]
    names = ["bucket"]
    if query.group_by is not None:
        columns.append(f"{quote(_declared(dataset, query.group_by).name)} AS grp")
        names.append("group")
    columns.append("COUNT(*) AS n")
    names.append("count")
    for spec in dataset.fields:
        if spec.type in ("int", "float"):
            columns.append(f"AVG({quote(spec.name)}) AS {quote('avg_' + spec.name)}")
            names.append(f"avg_{spec.name}")
    keys = "bucket, grp" if query.group_by is not None else "bucket"
    sql = f"SELECT {', '.join(columns)} FROM {target.sql(dataset.name)} WHERE " + " AND ".join(
        where
    )
    order = "bucket, grp NULLS LAST" if query.group_by is not None else "bucket"
    sql += f" GROUP BY {keys} ORDER BY {order}"
    return sql, params.items, names


def stats_dict(
    dataset: Dataset, query: StatsQuery, names: list[str], row: Sequence[Any]
) -> dict[str, Any]:
    result = dict(zip(names, row, strict=True))
    result["bucket"] = utc(result["bucket"])
    if query.group_by is not None:
        result["group"] = _convert(_declared(dataset, query.group_by), result["group"])
    return result


def quarantined_event(row: Sequence[Any]) -> QuarantinedEvent:
    return QuarantinedEvent(row[0], row[1], row[2], utc(row[3]))


def quarantine_query(
    target: Target,
    dataset: Dataset,
    after: tuple[datetime, str] | None,
    ids: Sequence[str] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """Quarantined events oldest first, after a keyset position and/or among `ids`."""
    params = Params()
    where: list[str] = []
    if after is not None:
        stamp, last = params.add("TIMESTAMP", utc(after[0])), params.add("STRING", after[1])
        where.append(f"received_at >= {stamp} AND (received_at > {stamp} OR id > {last})")
    if ids is not None:
        where.append(f"id IN UNNEST({params.add_array('STRING', ids)})")
    sql = f"SELECT id, reason, raw, received_at FROM {target.sql(quarantine_name(dataset))}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY received_at, id LIMIT {max(int(limit), 0)}", params.items


def release_query(target: Target, dataset: Dataset, ids: Sequence[str]) -> tuple[str, list[Any]]:
    params = Params()
    wanted = params.add_array("STRING", ids)
    return (
        f"DELETE FROM {target.sql(quarantine_name(dataset))} WHERE id IN UNNEST({wanted})",
        params.items,
    )


def expire_query(target: Target, dataset: Dataset, before: datetime) -> tuple[str, list[Any]]:
    params = Params()
    cut = params.add("TIMESTAMP", utc(before))
    return (
        f"DELETE FROM {target.sql(dataset.name)} WHERE {quote(dataset.event_time)} < {cut}",
        params.items,
    )


def summary_query(target: Target, dataset: Dataset) -> str:
    rows = f"{target.sql(dataset.name)} WHERE {not_probe(dataset)}"
    time = quote(dataset.event_time)
    return (
        f"SELECT (SELECT COUNT(*) FROM {rows}), "
        f"(SELECT COUNT(*) FROM {target.sql(quarantine_name(dataset))}), "
        f"(SELECT MAX({time}) FROM {rows}), "
        f"(SELECT MAX({quote(STORED_COLUMN)}) FROM {rows})"
    )
