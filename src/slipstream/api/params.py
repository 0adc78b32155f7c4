"""Values a client sends (query string, path, ids in a body) as typed, range-checked values.

Whatever reaches a store or a broker is a value it can hold: integers within int64, finite
floats, times whose UTC value is within years 1–9999, text without NUL or lone surrogates. Every
other value is a 400 naming the input, here, before any backend sees it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from slipstream.api.errors import ApiError
from slipstream.datasets import Dataset, FieldSpec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# ASCII digits only: int() would also take "1_000", " 7 " and other scripts' digits.
_INTEGER = re.compile(r"[+-]?0*([0-9]+)", re.ASCII)
INT64_DIGITS = 19
# A JSON-like number: float() would also take "1_000", " 7 ", "infinity" and other scripts' digits.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
TIME_EXAMPLE = "2026-11-24T10:00:00Z"
_UNENCODED_PLUS = re.compile(r" (?=[0-9]{2}:[0-9]{2}$)")  # the space before a trailing offset


def utc_or_none(stamp: datetime) -> datetime | None:
    """`stamp` in UTC (a naive one read as UTC), or None when its UTC value leaves years 1–9999
    (9999-12-31T23:59:59-14:00 is a valid RFC 3339 time that no datetime can hold in UTC)."""
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        return None


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time from the query string, in UTC (one without offset read as UTC, as in an
    event); None when absent or empty. Parsed as event times are (msgspec): Python's own parser
    takes more than RFC 3339 (week dates, offsets with seconds), and reads some of it wrongly."""
    if value is None or value == "":
        return None
    try:
        # A '+' of an offset arrives as a space when the client did not percent-encode it.
        stamp = utc_or_none(msgspec.convert(_UNENCODED_PLUS.sub("+", value), datetime))
    except msgspec.ValidationError:
        raise ApiError(
            400, f"{name}={value!r} is not an RFC 3339 time; use e.g. {TIME_EXAMPLE}"
        ) from None
    if stamp is None:
        raise ApiError(
            400, f"{name}={value!r} is out of range: in UTC it is outside the years 1 to 9999"
        )
    return stamp


def text_problem(value: str) -> str | None:
    """Why no store can hold `value` as text (and so no stored value equals it), or None."""
    if "\x00" in value:
        return "contains a NUL character, which no stored value holds"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid UTF-8 text"
    return None


def checked_text(what: str, value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ApiError(400, f"{what} {value!r} {problem}")
    return value


def integer_problem(raw: str) -> str | None:
    digits = _INTEGER.fullmatch(raw)
    if digits is None:
        return "must be an integer (digits, optionally signed)"
    # Length first: int() of thousands of digits is slow, and refused past 4300.
    if len(digits.group(1)) > INT64_DIGITS or not INT64_MIN <= int(raw) <= INT64_MAX:
        return f"is out of range: integers are stored in 64 bits ({INT64_MIN} to {INT64_MAX})"
    return None


def field_value(spec: FieldSpec, raw: str) -> Any:
    problem = None
    match spec.type:
        case "string":
            problem = text_problem(raw)
            if problem is None:
                return raw
        case "enum":
            if raw in spec.values:
                return raw
            problem = f"must be one of {', '.join(spec.values)}"
        case "int":
            problem = integer_problem(raw)
            if problem is None:
                return int(raw)
        case "float":
            number = float(raw) if _NUMBER.fullmatch(raw) else math.nan
            if math.isfinite(number):
                return number
            problem = "must be a finite number (digits, a point, an exponent)"
        case "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            problem = "must be true or false"
        case "timestamp":
            if raw:  # empty leaves since/until unset, but a filter needs a time
                return parse_time(spec.name, raw)
            problem = f"must be an RFC 3339 time, e.g. {TIME_EXAMPLE}"
        case "json":
            problem = "is a json field, which cannot be filtered on"
    raise ApiError(400, f"filter {spec.name}={raw!r} {problem}")


def filters_from(
    dataset: Dataset, params: Iterable[tuple[str, str]], declared: frozenset[str]
) -> dict[str, Any]:
    """Equality filters from every query parameter that is not one of the route's `declared`."""
    filters: dict[str, Any] = {}
    for name, raw in params:
        if name in declared:
            continue
        spec = dataset.field(name)
        if spec is None:
            raise ApiError(
                400,
                f"unknown query parameter {name!r}: filters must name a field of "
                f"{dataset.name!r} ({', '.join(dataset.field_names)}); the other parameters "
                f"are {', '.join(sorted(declared))}",
            )
        filters[name] = field_value(spec, raw)
    return filters
