"""Values read back from a store, made into values the API can always write.

A store can hold what no Python value can, put there by hand or by an older version: times past
9999 or before year 1 (DuckDB and PostgreSQL hold both, PostgreSQL also ±infinity), JSON that
orjson will not parse (NaN, 1e400) or will not write back (nested deeper than 254 levels). One such
row must not break the page, the stats or the summary it is part of. So:

- a time a `datetime` cannot hold reads as ISO 8601 text with an expanded year, as JavaScript's
  `Date.toISOString` writes it (`+010000-01-01T13:59:59Z`; year 0 is 1 BC, `-000001` is 2 BC), and
  ±infinity as the latest and earliest `datetime` (DuckDB's driver reads them so);
- JSON orjson cannot parse is read by the standard library, with numbers a double cannot hold and
  NaN/Infinity as null; JSON too deep to write back reads as its text.

A list cursor may carry such a time (`position_text`, `position_time`); `time_param` turns it
back into the database's own literal (`db_time_text`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

_DB_TIME = re.compile(
    r"(?P<year>\d{4,})-(?P<month>\d\d)-(?P<day>\d\d)(?P<bc1> \(BC\))?[ T]"
    r"(?P<clock>\d\d:\d\d:\d\d(?:\.\d{1,6})?)(?:[+-]\d\d(?::?\d\d)?)?(?P<bc2> BC)?"
)
EXPANDED_TIME = re.compile(
    r"(?P<year>[+-]\d{6}|\d{4})-(?P<month>\d\d)-(?P<day>\d\d)T"
    r"(?P<clock>\d\d:\d\d:\d\d(?:\.\d{1,6})?)Z"
)
_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
ENCODABLE_DEPTH = 254  # orjson refuses to write deeper nesting
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson writes as an integer


def stored_time(value: datetime | str) -> datetime | str:
    """A stored time read as naive UTC (a datetime), or as the database's text when a datetime
    cannot hold it: UTC-aware, or expanded ISO 8601 text (see the module's docstring)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = value.strip()
    if text in ("infinity", "+infinity"):
        return _LATEST
    if text == "-infinity":
        return _EARLIEST
    found = _DB_TIME.fullmatch(text)
    if found is None:
        return text  # a format this code does not know: still a value, not a failure
    year = int(found["year"])
    if found["bc1"] or found["bc2"]:
        year = 1 - year  # astronomical numbering: 1 BC is year 0
    return f"{_year(year)}-{found['month']}-{found['day']}T{found['clock']}Z"


def _year(year: int) -> str:
    return f"{year:04d}" if 0 <= year <= 9999 else f"{year:+07d}"


def position_text(value: datetime | str) -> str:
    """A list position's time as text for a cursor (UTC)."""
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def position_time(text: str) -> datetime | str:
    """The time of a cursor made by `position_text`; ValueError when it is not one."""
    found = EXPANDED_TIME.fullmatch(text)
    if found is None:
        stamp = datetime.fromisoformat(text)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    # Month, day and clock checked on a year with the same calendar (it repeats every 400 years).
    year = 2000 + int(found["year"]) % 400
    datetime.fromisoformat(f"{year:04d}-{found['month']}-{found['day']}T{found['clock']}")
    return text


@dataclass(frozen=True, slots=True)
class TimeLiterals:
    """How a database that holds times past the datetime range writes them as literals."""

    bc_suffix: bool  # "… 10:00:00+00 BC" (PostgreSQL) rather than "… (BC) 10:00:00+00" (DuckDB)
    years: tuple[int, int]  # the astronomical years it holds whole


DUCKDB = TimeLiterals(bc_suffix=False, years=(-290307, 294246))
POSTGRES = TimeLiterals(bc_suffix=True, years=(-4712, 294275))


def time_param(
    stamp: datetime | str, times: TimeLiterals | None, *, position: bool = False
) -> datetime | str:
    """A time as a query parameter; naive times are UTC. `times`: how the database writes times
    past the datetime range, None when it holds none (BigQuery).

    Where it holds them, an aware datetime goes as it is (the database converts it, past 9999
    too) and the text of a list position past the range as the database's own literal, which it
    casts where the time is compared. A list position at the latest datetime stands for
    +infinity too (both read as it): it is compared as infinity, so that rows between the two
    (past 9999) are not skipped; at worst one shows twice.

    Where it holds none, the time goes in UTC, and one a datetime cannot hold in UTC (9999-12-31
    23:00-14:00, or a position's text) as the edge of the range: the database holds nothing
    beyond it, so the query answers the same."""
    if times is None:
        return _edge_utc(stamp)
    if isinstance(stamp, str):
        return db_time_text(stamp, times)
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return "infinity" if position and stamp == _LATEST else stamp


def _edge_utc(stamp: datetime | str) -> datetime:
    if isinstance(stamp, str):
        return _EARLIEST if stamp.startswith(("-", "0000")) else _LATEST
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        return _LATEST if stamp.year > 1 else _EARLIEST


def utc(stamp: datetime) -> datetime:
    """A time in UTC, naive ones read as UTC; one a datetime cannot hold in UTC as the edge."""
    return _edge_utc(stamp)


def db_time_text(text: str, times: TimeLiterals) -> str:
    """Expanded ISO 8601 text as the database's timestamp literal; a year it cannot hold (only a
    made-up cursor has one) as ±infinity, which compares with its rows the same way."""
    found = EXPANDED_TIME.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an expanded ISO 8601 time")
    year = int(found["year"])
    if not times.years[0] <= year <= times.years[1]:
        return "infinity" if year > 0 else "-infinity"
    date = f"-{found['month']}-{found['day']}"
    if year >= 1:
        return f"{year:04d}{date} {found['clock']}+00"
    if times.bc_suffix:
        return f"{1 - year:04d}{date} {found['clock']}+00 BC"
    return f"{1 - year:04d}{date} (BC) {found['clock']}+00"


def stored_json(text: str) -> Any:
    """JSON text read from a store, as a value orjson can write back."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(
                text, parse_int=_integer, parse_float=_finite, parse_constant=lambda _: None
            )
        except (ValueError, RecursionError):
            return text
    if text.count("[") + text.count("{") > ENCODABLE_DEPTH and _depth(value) > ENCODABLE_DEPTH:
        return text
    return value


def _integer(digits: str) -> int | float | None:
    number = int(digits)
    if _INT_RANGE[0] <= number <= _INT_RANGE[1]:
        return number
    return _finite(digits)


def _finite(digits: str) -> float | None:
    number = float(digits)
    return number if math.isfinite(number) else None


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                deepest = max(deepest, level + 1)
                stack.append((child, level + 1))
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
    return deepest
