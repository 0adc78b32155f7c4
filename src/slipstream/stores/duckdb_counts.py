"""The DuckDB store's counts for the datasets overview, kept in memory.

The overview wants, per dataset, the rows (with or without the hidden keys), the quarantined
events, the newest event time and the last write. Asked of the table, that cost 7–8 ms at 2M
rows, and 185 ms once any hidden key (a probe's) was stored, since the prefix test reads every
key. But only this process writes the database (DuckDB allows one), every write passes the
store's writer thread, and a committed write's effect is known: so the counts are taken once
from the table, when first asked after the store opens, and from then on moved by each write,
on the writer thread, after its commit. Deletes (retention, released quarantine) are rare and
may remove any mix of rows: after one the counts are taken from the table again.

A write's inserted rows are counted by DuckDB (a key already stored is skipped). Batches that
hold a hidden key say which rows went in (`RETURNING`), to count those apart; the others cost
nothing more than a look at the batch's newest event time, exact when every row went in, and
otherwise read from the table at the next overview.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from slipstream.datasets import Dataset
from slipstream.stores.duckdb_database import Connection
from slipstream.stores.duckdb_sql import quarantine_table, quote


@dataclass(frozen=True, slots=True)
class Tally:
    """One dataset's counts; replaced whole, so a reader on another thread sees one state."""

    rows: int
    hidden: int
    quarantined: int
    newest_shown: datetime | None  # naive UTC, as the store reads times
    newest_hidden: datetime | None
    stored_shown: datetime | None
    stored_hidden: datetime | None
    newest_known: bool = True  # False after a batch some of whose rows were there already

    def summary_values(self, hide: bool) -> tuple[int, int, datetime | None, datetime | None]:
        """(rows, quarantined, newest event time, last write), as `summary_of` takes them."""
        if hide:
            return self.rows - self.hidden, self.quarantined, self.newest_shown, self.stored_shown
        return (
            self.rows,
            self.quarantined,
            _latest(self.newest_shown, self.newest_hidden),
            _latest(self.stored_shown, self.stored_hidden),
        )


class Tallies:
    """The counts of every dataset of one DuckDB store, for one hidden key prefix."""

    def __init__(self, hidden_prefix: str | None) -> None:
        self.hidden_prefix = hidden_prefix
        self._tallies: dict[str, Tally] = {}

    def get(self, dataset: str) -> Tally | None:
        return self._tallies.get(dataset)

    def forget(self) -> None:
        """After the database was reopened: take every count from the table again."""
        self._tallies.clear()

    # --- on the writer thread -----------------------------------------------------------------

    def take(self, conn: Connection, dataset: Dataset) -> Tally:
        """Count the dataset's table (at the first overview, after a delete)."""
        hidden = self._hidden_test(dataset)
        time, stored = quote(dataset.event_time), quote("_stored_at")
        row = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {hidden}), "
            f"(SELECT count(*) FROM {quarantine_table(dataset)}), "
            f"max({time}) FILTER (WHERE NOT {hidden}) AT TIME ZONE 'UTC', "
            f"max({time}) FILTER (WHERE {hidden}) AT TIME ZONE 'UTC', "
            f"max({stored}) FILTER (WHERE NOT {hidden}) AT TIME ZONE 'UTC', "
            f"max({stored}) FILTER (WHERE {hidden}) AT TIME ZONE 'UTC' "
            f"FROM {quote(dataset.name)}",
            self._prefix_params(),
        ).fetchone()
        assert row is not None  # an aggregate answers one row
        tally = Tally(*row)
        self._tallies[dataset.name] = tally
        return tally

    def read_newest(self, conn: Connection, dataset: Dataset) -> None:
        """The newest event time of the shown rows, from the table (top-1 by time)."""
        tally = self._tallies.get(dataset.name)
        if tally is None or tally.newest_known:
            return
        time = quote(dataset.event_time)
        row = conn.execute(
            f"SELECT {time} AT TIME ZONE 'UTC' FROM {quote(dataset.name)} "
            f"WHERE NOT {self._hidden_test(dataset)} ORDER BY {time} DESC LIMIT 1",
            self._prefix_params(),
        ).fetchone()
        self._tallies[dataset.name] = replace(
            tally, newest_shown=row[0] if row else None, newest_known=True
        )

    def has_hidden(self, keys: pa.Array) -> bool:
        if not self.hidden_prefix:
            return False
        return bool(pc.any(pc.starts_with(keys, self.hidden_prefix)).as_py())

    def inserted(
        self, dataset: Dataset, batch: pa.Table, count: int, stored_at: datetime | None
    ) -> None:
        """After the commit of a batch without hidden keys, of which `count` rows went in."""
        tally = self._tallies.get(dataset.name)
        if tally is None or count == 0:
            return
        newest = _naive(pc.max(batch[dataset.event_time]).as_py())
        self._tallies[dataset.name] = replace(
            tally,
            rows=tally.rows + count,
            newest_shown=_latest(tally.newest_shown, newest),
            newest_known=tally.newest_known and count == batch.num_rows,
            stored_shown=_naive(stored_at),
        )

    def inserted_rows(self, dataset: Dataset, went_in: pa.Table) -> None:
        """After the commit of a batch with hidden keys: the rows that went in (key, event
        time, stored time)."""
        tally = self._tallies.get(dataset.name)
        if tally is None or went_in.num_rows == 0:
            return
        assert self.hidden_prefix
        hidden = pc.starts_with(went_in.column(0), self.hidden_prefix)
        shown_rows, hidden_rows = went_in.filter(pc.invert(hidden)), went_in.filter(hidden)
        self._tallies[dataset.name] = replace(
            tally,
            rows=tally.rows + went_in.num_rows,
            hidden=tally.hidden + hidden_rows.num_rows,
            newest_shown=_latest(tally.newest_shown, _max(shown_rows, 1)),
            newest_hidden=_latest(tally.newest_hidden, _max(hidden_rows, 1)),
            stored_shown=_latest(tally.stored_shown, _max(shown_rows, 2)),
            stored_hidden=_latest(tally.stored_hidden, _max(hidden_rows, 2)),
        )

    def quarantined(self, dataset: Dataset, count: int) -> None:
        tally = self._tallies.get(dataset.name)
        if tally is not None and count:
            self._tallies[dataset.name] = replace(tally, quarantined=tally.quarantined + count)

    def deleted(self, conn: Connection, dataset: Dataset) -> None:
        if dataset.name in self._tallies:
            self.take(conn, dataset)

    def _hidden_test(self, dataset: Dataset) -> str:
        if not self.hidden_prefix:
            return "false"
        return f"starts_with({quote(dataset.key)}, $prefix)"

    def _prefix_params(self) -> dict[str, Any]:
        return {"prefix": self.hidden_prefix} if self.hidden_prefix else {}


def _max(rows: pa.Table, column: int) -> datetime | None:
    if rows.num_rows == 0:
        return None
    return _naive(pc.max(rows.column(column)).as_py())


def _naive(value: Any) -> datetime | None:
    """A time as the store's reads give it: naive UTC."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
