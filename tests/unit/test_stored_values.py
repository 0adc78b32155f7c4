"""How values no Python value holds read back (the stores' side: tests/contracts/test_stored_values.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from slipstream.stores.values import (
    DUCKDB,
    POSTGRES,
    db_time_text,
    position_text,
    position_time,
    stored_json,
    stored_time,
    time_param,
)

MINUS_14 = timezone(timedelta(hours=-14))
PLUS_14 = timezone(timedelta(hours=14))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10000-01-01 13:59:59", "+010000-01-01T13:59:59Z"),  # DuckDB and PostgreSQL alike
        ("294276-12-31 23:59:59.5", "+294276-12-31T23:59:59.5Z"),
        ("0001-12-31 (BC) 10:00:00", "0000-12-31T10:00:00Z"),  # DuckDB: 1 BC is year 0
        ("0001-12-31 10:00:00 BC", "0000-12-31T10:00:00Z"),  # PostgreSQL
        ("4713-01-01 00:00:00 BC", "-004712-01-01T00:00:00Z"),
        ("infinity", datetime.max.replace(tzinfo=UTC)),
        ("-infinity", datetime.min.replace(tzinfo=UTC)),
        ("an unknown format", "an unknown format"),  # kept, never a failure
    ],
)
def test_a_stored_time_no_datetime_holds_reads_as_expanded_iso_text(
    text: str, expected: object
) -> None:
    assert stored_time(text) == expected


def test_an_ordinary_stored_time_reads_as_a_utc_datetime() -> None:
    naive = datetime(2026, 1, 1, 12)
    assert stored_time(naive) == naive.replace(tzinfo=UTC)
    assert stored_time(datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == (
        naive.replace(tzinfo=UTC)
    )


def test_a_cursor_position_round_trips_and_becomes_each_database_s_literal() -> None:
    for value in (
        datetime(2026, 1, 1, tzinfo=UTC),
        "+010000-01-01T13:59:59Z",
        "0000-12-31T10:00:00Z",
    ):
        assert position_time(position_text(value)) == value
    with pytest.raises(ValueError, match="Invalid isoformat"):
        position_time("not a time")
    assert db_time_text("+010000-01-01T13:59:59Z", POSTGRES) == "10000-01-01 13:59:59+00"
    assert db_time_text("0000-12-31T10:00:00Z", POSTGRES) == "0001-12-31 10:00:00+00 BC"
    assert db_time_text("-000001-01-01T00:00:00Z", DUCKDB) == "0002-01-01 (BC) 00:00:00+00"
    latest = datetime.max.replace(tzinfo=UTC)
    assert time_param(latest, POSTGRES, position=True) == "infinity"  # +infinity reads so
    assert time_param(latest, POSTGRES) == latest  # as a bound, the time it is


def test_a_made_up_cursor_time_is_refused_or_kept_within_the_database_s_range() -> None:
    for forged in ("+010000-13-01T00:00:00Z", "+010001-02-29T00:00:00Z", "+010000-01-01T25:00:00Z"):
        with pytest.raises(ValueError, match=r"out of range|must be in"):
            position_time(forged)
    assert position_time("+010000-02-29T00:00:00Z") == "+010000-02-29T00:00:00Z"  # a leap year
    assert db_time_text("+999999-01-01T00:00:00Z", DUCKDB) == "infinity"
    assert db_time_text("-010000-01-01T00:00:00Z", POSTGRES) == "-infinity"
    assert db_time_text("-010000-01-01T00:00:00Z", DUCKDB) == "10001-01-01 (BC) 00:00:00+00"


def test_bounds_past_the_range_are_not_converted_where_they_would_overflow() -> None:
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_14)
    with pytest.raises(OverflowError):
        late.astimezone(UTC)
    assert time_param(late, DUCKDB) is late  # DuckDB and PostgreSQL compare it as is
    # BigQuery (no literals for such times) holds nothing past the range: its edge answers the same.
    assert time_param(late, None) == datetime.max.replace(tzinfo=UTC)
    assert time_param(datetime(1, 1, 1, tzinfo=PLUS_14), None) == datetime.min.replace(tzinfo=UTC)
    assert time_param("+010000-01-01T13:59:59Z", None, position=True) == datetime.max.replace(
        tzinfo=UTC
    )
    assert time_param("0000-12-31T10:00:00Z", None, position=True) == datetime.min.replace(
        tzinfo=UTC
    )
    assert time_param(datetime(2026, 1, 1, 12, tzinfo=MINUS_14), None) == datetime(
        2026, 1, 2, 2, tzinfo=UTC
    )


def test_json_orjson_cannot_read_or_write_back_still_reads() -> None:
    assert stored_json('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert stored_json("[1e400, NaN, -Infinity, 123456789012345678901234567890]") == [
        None,
        None,
        None,
        1.2345678901234568e29,
    ]
    deep = "[" * 300 + "]" * 300
    assert stored_json(deep) == deep
    assert orjson.dumps(stored_json("[" * 254 + "]" * 254))  # the deepest orjson writes
    assert stored_json("{not json") == "{not json"
