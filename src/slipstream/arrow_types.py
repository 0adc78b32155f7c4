"""The Arrow type of each dataset field type: one mapping for every place that builds Arrow
columns of events (DuckDB's batches, BigQuery's staged Parquet, exports)."""

from __future__ import annotations

import pyarrow as pa

from slipstream.datasets import FieldType

TIMESTAMP = pa.timestamp("us", tz="UTC")  # every time in UTC, to the microsecond
TEXT = pa.string()
ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "string": TEXT,
    "enum": TEXT,
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP,
    "json": TEXT,  # the JSON text
}
