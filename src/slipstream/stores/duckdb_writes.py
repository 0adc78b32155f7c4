"""DuckDB's write of one batch: its valid rows and its quarantined events in one commit, and
what the store keeps beside the table learns of it (counts, key prefixes, answers' versions)."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import duckdb

from slipstream.datasets import Dataset
from slipstream.events import EventRows, Rejected
from slipstream.stores import WriteResult
from slipstream.stores import duckdb_sql as sql
from slipstream.stores.answers import Answers
from slipstream.stores.duckdb_counts import Tallies
from slipstream.stores.duckdb_database import Connection
from slipstream.stores.key_prefixes import AbsentPrefixes


@dataclass(frozen=True, slots=True)
class Batch:
    dataset: Dataset
    rows: EventRows
    rejected: list[Rejected]


def write_batch(
    conn: Connection, batch: Batch, tallies: Tallies, prefixes: AbsentPrefixes, answers: Answers
) -> WriteResult:
    """On the writer thread: insert the rows whose keys are new and the quarantined events, in
    one transaction; then move the counts and the dataset's version."""
    dataset, rows, rejected = batch.dataset, batch.rows, batch.rejected
    table = sql.rows_table(dataset, rows) if rows.rows else None
    quarantine = sql.quarantine_rows(rejected) if rejected else None
    if table is not None:
        key = rows.columns.index(dataset.key)
        prefixes.note(dataset.name, (row[key] for row in rows.rows))
    inserted = quarantined = 0
    went_in, stored_at = None, None
    hidden = table is not None and tallies.has_hidden(table[dataset.key])
    conn.begin()
    try:
        if table is not None:
            if hidden:  # which rows went in: the hidden ones are counted apart
                conn.register(sql.BATCH_VIEW, table)
                statement = sql.returning(dataset, sql.insert_rows(dataset, rows))
                went_in = conn.sql(statement).to_arrow_table()
                inserted = went_in.num_rows
            else:
                inserted = sql.insert_new(conn, dataset, rows, table)
                stored_at = conn.execute("SELECT current_timestamp").fetchall()[0]
        if quarantine is not None:
            statement = sql.insert_quarantine(dataset)
            quarantined = sql.insert_from(conn, sql.QUARANTINE_VIEW, quarantine, statement)
        conn.commit()
        answers.changed(dataset.name)
    except BaseException:
        with suppress(duckdb.Error):
            conn.rollback()
        raise
    finally:
        # After the commit or rollback: in an aborted transaction this would fail too.
        for view in (sql.BATCH_VIEW, sql.QUARANTINE_VIEW):
            with suppress(duckdb.Error):
                conn.unregister(view)
    if went_in is not None:
        tallies.inserted_rows(dataset, went_in)
    elif table is not None:
        tallies.inserted(dataset, table, inserted, stored_at[0] if stored_at else None)
    tallies.quarantined(dataset, quarantined)
    return WriteResult(inserted, quarantined)
