"""The windows a newest-first page is read through (stores/windows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slipstream.stores import ListQuery
from slipstream.stores.windows import WIDTHS, windows

NEWEST = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def bounds(query: ListQuery, newest: datetime | None = NEWEST) -> list[datetime | None]:
    return [w.since for w in windows(query, newest)]


def test_windows_widen_from_the_newest_time_and_end_with_the_query() -> None:
    assert bounds(ListQuery(limit=50)) == [NEWEST - width for width in WIDTHS] + [None]


def test_a_cursor_places_the_windows_below_it() -> None:
    after = NEWEST - timedelta(days=3)
    query = ListQuery(after=(after, "ev-9"))
    assert bounds(query) == [after - width for width in WIDTHS] + [None]
    assert bounds(ListQuery(after=("10000-01-01T00:00:00Z", "ev-9"))) == [None]


def test_until_and_since_of_the_caller_are_kept() -> None:
    until = NEWEST - timedelta(days=2)
    assert bounds(ListQuery(until=until))[0] == until - WIDTHS[0]
    since = NEWEST - timedelta(hours=5)
    assert bounds(ListQuery(since=since)) == [NEWEST - WIDTHS[0], since]


def test_no_newest_time_or_a_time_at_the_calendars_start_reads_the_query_alone() -> None:
    assert bounds(ListQuery(), None) == [None]
    start = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
    assert bounds(ListQuery(), start) == [None]


def test_naive_times_are_read_as_utc() -> None:
    naive = NEWEST.replace(tzinfo=None)
    assert bounds(ListQuery(), naive)[0] == NEWEST - WIDTHS[0]
    assert bounds(ListQuery(since=naive - timedelta(minutes=5)), NEWEST)[-1] == naive - timedelta(
        minutes=5
    )
