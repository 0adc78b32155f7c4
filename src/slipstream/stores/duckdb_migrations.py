"""The DuckDB store's migrations: tables made when missing, columns added for new fields."""

from __future__ import annotations

from contextlib import suppress
from typing import cast

import duckdb

from slipstream.datasets import RESERVED_COLUMNS, Dataset, FieldType, schema_changes
from slipstream.errors import ConfigError
from slipstream.stores import duckdb_sql as sql
from slipstream.stores.duckdb_database import Connection


def migrate(conn: Connection, dataset: Dataset, path: str, *, create_tables: bool) -> None:
    """Make the dataset's tables, or add the columns of newly declared fields, in one transaction."""
    found = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        [dataset.name],
    ).fetchone()
    exists = bool(found and found[0])
    if not exists and not create_tables:
        raise ConfigError(
            f"table {dataset.name!r} does not exist in {path} and "
            "SLIPSTREAM_CREATE_RESOURCES is off"
        )
    conn.begin()
    try:
        if exists:
            for spec in schema_changes(dataset, stored_fields(conn, dataset)):
                conn.execute(sql.add_column(dataset, spec))
            conn.execute(sql.create_quarantine(dataset))
        else:
            for statement in sql.create_table(dataset):
                conn.execute(statement)
        conn.executemany(
            sql.record_field(), [(dataset.name, f.name, f.type) for f in dataset.fields]
        )
        conn.commit()
    except BaseException:
        with suppress(duckdb.Error):
            conn.rollback()
        raise


def stored_fields(conn: Connection, dataset: Dataset) -> dict[str, FieldType]:
    rows = conn.execute(
        f"SELECT field, type FROM {sql.FIELDS_TABLE} WHERE dataset = ?", [dataset.name]
    ).fetchall()
    if rows:
        return {name: cast(FieldType, kind) for name, kind in rows}
    # A table made before the metadata table existed: read its column types instead.
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ?",
        [dataset.name],
    ).fetchall()
    stored: dict[str, FieldType] = {}
    for name, data_type in columns:
        kind = sql.field_type_of_column(data_type)
        if kind is not None and name not in RESERVED_COLUMNS:
            stored[name] = kind
    return stored
