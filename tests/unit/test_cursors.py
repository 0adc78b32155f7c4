"""Signed cursors: what the API issues comes back intact, anything altered is a 400, and the key
is one every replica of a deployment derives alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipstream.api.cursors import NOT_OURS, Cursors
from slipstream.api.errors import ApiError
from slipstream.config import load_settings
from slipstream.errors import ConfigError
from tests import helpers

KEY = b"k" * 32
moments = st.datetimes(timezones=st.just(UTC))
positions = st.tuples(moments, st.text(max_size=300))


def refusal(cursors: Cursors, cursor: str, query: str = "q") -> str:
    with pytest.raises(ApiError) as info:
        cursors.decode(cursor, query, (datetime, str))
    assert info.value.status == 400
    return info.value.message


@given(query=st.text(), position=positions)
def test_a_cursor_comes_back_as_it_was_issued(query: str, position: tuple[datetime, str]) -> None:
    cursors = Cursors(KEY)
    assert cursors.decode(cursors.encode(query, position), query, (datetime, str)) == list(position)


@given(position=positions, data=st.data())
def test_a_cursor_altered_in_any_character_is_refused(
    position: tuple[datetime, str], data: st.DataObject
) -> None:
    cursors = Cursors(KEY)
    cursor = cursors.encode("q", position)
    at = data.draw(st.integers(0, len(cursor) - 1), label="at")
    other = data.draw(st.characters().filter(lambda c: c != cursor[at]), label="other")
    altered = cursor[:at] + other + cursor[at + 1 :]
    assert NOT_OURS in refusal(cursors, altered)


@given(position=positions, cut=st.integers(1, 30))
def test_a_cursor_cut_short_or_lengthened_is_refused(
    position: tuple[datetime, str], cut: int
) -> None:
    cursors = Cursors(KEY)
    cursor = cursors.encode("q", position)
    assert NOT_OURS in refusal(cursors, cursor[:-cut])
    assert NOT_OURS in refusal(cursors, cursor + "A" * cut)


@given(text=st.text())
def test_any_text_is_refused_with_a_400(text: str) -> None:
    assert NOT_OURS in refusal(Cursors(KEY), text)


def test_a_cursor_of_another_key_or_query_is_refused() -> None:
    cursor = Cursors(KEY).encode("q", [datetime.now(UTC), "ev-1"])
    assert NOT_OURS in refusal(Cursors(b"other" * 7), cursor)
    assert "different query" in refusal(Cursors(KEY), cursor, query="other")


def test_a_signed_position_of_the_wrong_shape_is_refused() -> None:
    """A cursor signed under a key someone learned still carries no value a parser chokes on."""
    cursors = Cursors(KEY)
    for position in (["9999-12-31T23:59:59-14:00", "x"], ["yesterday", "x"], ["x"]):
        assert NOT_OURS in refusal(cursors, cursors.encode("q", position))


def test_the_derived_key_is_shared_by_replicas_and_changes_with_the_deployment() -> None:
    store = "postgresql://app@db:5432/events"
    one = helpers.settings(store_url=store, api_keys="reader-key-1:read,ops-key-111:read+admin")
    # Another replica: the same settings, written in another order.
    two = helpers.settings(store_url=store, api_keys=" ops-key-111:admin+read , reader-key-1:read")
    assert one.cursor_key() == two.cursor_key()
    assert helpers.settings(store_url=store + "2", api_keys="reader-key-1:read").cursor_key() != (
        helpers.settings(store_url=store, api_keys="reader-key-1:read").cursor_key()
    )
    assert helpers.settings(store_url=store, api_keys="reader-key-2:read").cursor_key() != (
        helpers.settings(store_url=store, api_keys="reader-key-1:read").cursor_key()
    )


def test_a_cursor_secret_replaces_the_derived_key() -> None:
    secret = "s3cret-s3cret-s3cret"
    a = helpers.settings(cursor_secret=secret, store_url="duckdb:///a.duckdb")
    b = helpers.settings(
        cursor_secret=secret, store_url="duckdb:///b.duckdb", api_keys="new-key-1:read"
    )
    assert (
        a.cursor_key()
        == b.cursor_key()
        != helpers.settings(store_url="duckdb:///a.duckdb").cursor_key()
    )
    assert helpers.settings(cursor_secret="").cursor_secret is None


def test_a_short_cursor_secret_fails_at_start_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, cursor_secret="too-short")
    assert "SLIPSTREAM_CURSOR_SECRET" in str(info.value)
    assert "16 characters" in str(info.value)
    assert "too-short" not in str(info.value)
