"""The parsers of what clients send: any text gives a value a store can hold, or a 400 naming the
input; nothing else (no OverflowError, no int64 overflow, no NaN) gets past them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from slipstream.api.errors import ApiError
from slipstream.api.params import INT64_MAX, INT64_MIN, field_value, parse_time
from slipstream.datasets import FieldSpec


def spec(kind: str, **extra: Any) -> FieldSpec:
    return FieldSpec.model_validate({"name": "f", "type": kind, **extra})


def outcome(parse: Callable[..., Any], *args: Any) -> Any:
    """What `parse` returned, or the ApiError it raised, which must be a 400."""
    try:
        return parse(*args)
    except ApiError as exc:
        error = exc
    assert error.status == 400
    return error


def parsed(kind: str, raw: str, **extra: Any) -> Any:
    """The filter value, or the ApiError it raised: a 400 naming the filter."""
    value = outcome(field_value, spec(kind, **extra), raw)
    if isinstance(value, ApiError):
        assert value.message.startswith(("filter f=", "f="))
    return value


# RFC 3339 offsets are whole minutes.
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timedelta(minutes=minutes)
)


@given(st.datetimes(timezones=st.builds(timezone, offsets)))
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
def test_a_time_is_its_utc_instant_or_a_400_out_of_range(stamp: datetime) -> None:
    try:
        in_utc = stamp.astimezone(UTC)
    except OverflowError:
        with pytest.raises(ApiError) as info:
            parse_time("since", stamp.isoformat())
        assert info.value.status == 400
        assert "outside the years 1 to 9999" in info.value.message
        return
    assert parse_time("since", stamp.isoformat()) == in_utc


@pytest.mark.parametrize(
    "text",
    [
        "2000-01-01T00:00:00+00:00:00.000001",  # Python's parser read this one as UTC
        "2000-01-01T00:00:00+05:30:15",
        "2026-W48-2T10:00:00Z",
        "2026-11-24",
        "20261124T100000Z",
    ],
)
def test_a_time_that_is_not_rfc_3339_is_a_400(text: str) -> None:
    refused = outcome(parse_time, "since", text)
    assert isinstance(refused, ApiError)
    assert "is not an RFC 3339 time" in refused.message


@pytest.mark.parametrize(
    "text", ["2026-11-24T10:00:00Z", "2026-11-24t10:00:00z", "2026-11-24 10:00:00Z"]
)
def test_rfc_3339_spellings_are_times(text: str) -> None:
    assert parse_time("since", text) == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert parse_time("since", "2026-11-24T11:00:00 01:00") == parse_time("since", text)


@given(st.text())
@example("9999-12-31T23:59:59-14:00")
@example("0001-01-01T00:00:00 14:00")  # '+' sent unencoded arrives as a space
def test_any_text_is_a_utc_time_or_a_400(text: str) -> None:
    stamp = outcome(parse_time, "until", text)
    if isinstance(stamp, ApiError):
        assert stamp.message.startswith("until=")
    else:
        assert stamp is None or stamp.utcoffset() == timedelta(0)


@given(st.integers())
@example(INT64_MAX + 1)
@example(INT64_MIN - 1)
@example(99999999999999999999999)
def test_an_integer_filter_holds_in_64_bits_or_is_a_400(number: int) -> None:
    value = parsed("int", str(number))
    if INT64_MIN <= number <= INT64_MAX:
        assert value == number
    else:
        assert isinstance(value, ApiError)
        assert "out of range" in value.message


@given(st.text())
@example("1_000")
@example(" 7")
@example("١٢")  # digits of another script, which int() would take
@example("9" * 5000)  # past int()'s own limit of digits
def test_any_text_is_an_int64_or_a_400(text: str) -> None:
    value = parsed("int", text)
    assert isinstance(value, ApiError) or INT64_MIN <= value <= INT64_MAX


@given(st.one_of(st.floats(), st.text()))
@example("nan")
@example("-inf")
@example("1e999")
@example("1_000")
@example(" 7.5")
@example("١٫٥")  # digits of another script, which float() would take
def test_a_float_filter_is_finite_or_a_400(raw: float | str) -> None:
    value = parsed("float", str(raw))
    assert isinstance(value, ApiError) or math.isfinite(value)
    if isinstance(raw, float) and math.isfinite(raw):
        assert value == raw
    if isinstance(raw, str) and not isinstance(value, ApiError):
        assert raw.strip() == raw
        assert raw.isascii()
        assert "_" not in raw


@given(st.text(alphabet=st.characters(exclude_categories=())))
@example("a\x00b")
@example("\ud800")
def test_a_string_filter_is_text_a_store_holds_or_a_400(text: str) -> None:
    value = parsed("string", text)
    if isinstance(value, ApiError):
        assert "\x00" in text or "surrogate" in value.message
    else:
        assert value == text
        value.encode()  # valid UTF-8
        assert "\x00" not in value


@given(st.text())
def test_bool_enum_and_timestamp_filters_never_raise_anything_else(text: str) -> None:
    parsed("bool", text)
    parsed("enum", text, values=["a", "b"])
    parsed("timestamp", text)


def test_an_empty_time_filter_is_a_400_not_a_filter_on_null() -> None:
    """`since=` leaves the range open, but `event_time=` once filtered on `IS NULL`."""
    refused = parsed("timestamp", "")
    assert isinstance(refused, ApiError)
    assert "must be an RFC 3339 time" in refused.message
    assert parse_time("since", "") is None
