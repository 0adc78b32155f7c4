"""Newest-first pages read from the newest rows only, widening the window until the page is full.

A store without an index in time order (DuckDB) finds "the newest 50" by scanning every row, so
the cost of a page grew with the table. With a lower bound on event time its zone maps (min and
max per row group) skip every row group older than the bound, and rows arrive roughly in time
order, so a recent bound touches one or two row groups whatever the table holds. The page is
read with the bound `newest - 1 h`, then 1 day, then 30 days, then none, stopping at the first
that fills it: a page of the top N rows of a window is the top N of the whole when the window
holds N rows, since every row outside is older than every row inside.

The newest time only places the windows: an estimate too high or too low costs a widening, never
a row, because the bound is a lower one only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from slipstream.stores import ListQuery

WIDTHS = (timedelta(hours=1), timedelta(days=1), timedelta(days=30))


def windows(query: ListQuery, newest: datetime | None) -> Iterator[ListQuery]:
    """`query` with ever wider lower bounds on event time, ending with `query` itself; the
    caller stops at the first whose page is full. `newest`: about the newest event time stored
    (None: unknown, and `query` alone is read)."""
    top = _top(query, newest)
    if top is not None:
        for width in WIDTHS:
            if top - datetime.min.replace(tzinfo=UTC) <= width:
                break  # near the calendar's start: no bound below it
            bound = top - width
            if query.since is not None and _aware(query.since) >= bound:
                break  # the caller's own bound is narrower already
            yield dataclasses.replace(query, since=bound)
    yield query


def _top(query: ListQuery, newest: datetime | None) -> datetime | None:
    """Where the page starts: the cursor's time when it has one, else the newest time."""
    if query.after is not None:
        start = query.after[0]
        if not isinstance(start, datetime):  # a time no datetime holds: no window
            return None
    elif newest is None:
        return None
    else:
        start = newest
    start = _aware(start)
    if query.until is not None and _aware(query.until) < start:
        start = _aware(query.until)
    return start


def _aware(stamp: datetime) -> datetime:
    """A time as the stores read it: naive means UTC."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
