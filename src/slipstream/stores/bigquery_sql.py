"""SQL text of the BigQuery store's write path (the MERGEs), and its reads' parameters (the
reads themselves are `stores/reads.py`).

Identifiers are validated and backquoted (`quote`); every value travels as a query parameter.
"""

from __future__ import annotations

from typing import cast

from google.cloud.bigquery import ArrayQueryParameter, ScalarQueryParameter

from slipstream.datasets import Dataset, FieldType
from slipstream.events import EXTRA_COLUMN, RECEIVED_COLUMN
from slipstream.stores.bigquery_schema import (
    BQ_TYPES,
    STORED_COLUMN,
    Target,
    quarantine_name,
    quote,
)
from slipstream.stores.reads import Bound

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


# --- reads ---------------------------------------------------------------------------------------


def query_parameters(bound: Bound) -> list[ScalarQueryParameter | ArrayQueryParameter]:
    """A read's parameters, typed as BigQuery wants them."""
    params: list[ScalarQueryParameter | ArrayQueryParameter] = []
    for name, value in bound.params.items():
        kind = bound.statement.kinds[name]
        if kind == "strings":
            params.append(ArrayQueryParameter(name, "STRING", value))
        else:
            params.append(ScalarQueryParameter(name, BQ_TYPES[cast(FieldType, kind)], value))
    return params
