"""Values some store cannot hold are refused at validation, with the field path, the same at the
API (rejected at once) and in the worker (quarantined): U+0000 anywhere in an event, nesting
deeper than the stores' JSON writer goes, times that leave years 1-9999 once in UTC, event ids
that are empty or too long."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import MAX_ID_LENGTH, EventCodec
from slipstream.intake import MalformedBody, from_json, from_ndjson
from slipstream.storable import MAX_DEPTH, hints

DATASET = Dataset(
    name="readings",
    event_time="at",
    fields=(
        FieldSpec(name="id", type="string"),
        FieldSpec(name="at", type="timestamp", required=True),
        FieldSpec(name="seen", type="timestamp"),
        FieldSpec(name="label", type="string"),
        FieldSpec(name="payload", type="json"),
    ),
)
CODEC = EventCodec(DATASET)


def event(**values: Any) -> dict[str, Any]:
    return {"id": "r-1", "at": "2026-01-01T00:00:00Z", **values}


def verdicts(document: dict[str, Any] | bytes) -> list[str]:
    """The reason each path gives for one event ("" when valid): API JSON, API NDJSON, worker."""
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    try:
        whole = from_json(raw, CODEC, {})
        reasons = [whole.rejected[0]["error"] if whole.rejected else ""]
    except MalformedBody as exc:  # the whole document refused
        reasons = [f"400: {exc}"]
    line = from_ndjson(raw, CODEC, {})
    reasons.append(line.rejected[0]["error"] if line.rejected else "")
    _, rejected = CODEC.decode([("message-key", raw, datetime.now(UTC))])
    reasons.append(rejected[0][1].reason if rejected else "")
    return [r.removeprefix("line 1: ") for r in reasons]


NUL = "U+0000 (NUL) is not allowed in text (PostgreSQL cannot store it); remove it - at "


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (event(label="a\x00b"), "$.label"),
        (event(id="r\x00"), "$.id"),
        (event(payload={"items": [{"name": "ok"}, {"name": "\x00"}]}), "$.payload.items[1].name"),
        (event(payload={"ke\x00y": 1}), "$.payload.ke\\u0000y (the key)"),
        (event(notes=["fine", "\x00"]), "$.notes[1]"),  # not declared: it would go to `extra`
        (event(**{"odd\x00name": True}), "$.odd\\u0000name (the key)"),
    ],
)
def test_nul_is_refused_wherever_it_is(document: dict[str, Any], path: str) -> None:
    assert verdicts(document) == [NUL + path] * 3


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """An event whose payload nests arrays so that the event is `depth` containers deep."""
    arrays = depth - 1
    return b'{"id": "r-1", "at": "2026-01-01T00:00:00Z", "payload": ' + (
        b"[" * arrays + inner + b"]" * arrays + b"}"
    )


def orjson_free_loads(text: bytes) -> object:
    return json.loads(text)


def test_nesting_deeper_than_the_stores_write_is_refused() -> None:
    """orjson (which writes json fields and `extra` back) stops at MAX_DEPTH: deeper is refused,
    whether the event is read alone or inside a JSON document of many."""
    assert verdicts(nested(MAX_DEPTH))[1:] == ["", ""]
    reasons = verdicts(nested(MAX_DEPTH + 1))[1:]
    deepest = "$.payload" + "[0]" * (MAX_DEPTH - 1)
    assert (
        reasons
        == [
            f"objects and arrays are nested more than {MAX_DEPTH} deep; flatten the event - at {deepest}"
        ]
        * 2
    )
    assert from_json(nested(MAX_DEPTH), CODEC, {}).accepted == 1
    # In a JSON array, the event too deep is refused alone, kept whole for its quarantine row,
    # and its neighbours are taken.
    array = b"[" + nested(MAX_DEPTH) + b"," + nested(MAX_DEPTH + 1) + b"]"
    intake = from_json(array.replace(b'"r-1"', b'"r-2"', 1), CODEC, {})
    assert intake.ids == ["r-2"]
    assert intake.rejected == [
        {
            "index": 1,
            "error": f"objects and arrays are nested more than {MAX_DEPTH} deep; flatten the event",
        }
    ]
    kept = intake.messages[1].data
    assert orjson_free_loads(kept) == orjson_free_loads(nested(MAX_DEPTH + 1))
    with pytest.raises(TypeError, match="Recursion limit"):  # the writer's limit, checked here
        orjson.dumps(orjson.loads(nested(MAX_DEPTH + 1)))


def test_nul_deep_in_nesting_is_found_without_recursion() -> None:
    assert (
        verdicts(nested(1000, b'"\\u0000"'))[1:]
        == [
            f"objects and arrays are nested more than {MAX_DEPTH} deep; flatten the event"
            f" - at $.payload{'[0]' * (MAX_DEPTH - 1)}"
        ]
        * 2
    )
    assert verdicts(nested(100, b'"\\u0000"'))[2].startswith(NUL + "$.payload[0][0]")


def test_text_that_only_looks_like_the_escape_is_accepted() -> None:
    backslash_u = event(label="\\u0000 is how JSON writes NUL")  # a backslash, then u0000
    assert hints(orjson.dumps(backslash_u)).nul  # the cheap scan says maybe…
    assert verdicts(backslash_u) == ["", "", ""]  # …and the walk says no


@pytest.mark.parametrize(
    ("field", "stamp"),
    [
        ("at", "9999-12-31T23:59:59-14:00"),
        ("at", "0001-01-01T00:00:00+14:00"),
        ("seen", "9999-12-31T20:00:00-04:00"),
    ],
)
def test_times_outside_years_1_to_9999_in_utc_are_refused(field: str, stamp: str) -> None:
    reasons = verdicts(event(**{field: stamp}))
    assert reasons == [reasons[0]] * 3
    assert reasons[0].startswith(f"{stamp} is outside years 1-9999 once converted to UTC")
    assert reasons[0].endswith(f"- at $.{field}")


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": "r-1", "at": "\\u0039999-12-31T23:59:59-14:00"}',  # an escaped digit
        b'{"id": "r-1", "at": "9999\\u002d12-31T23:59:59-14:00"}',  # an escaped dash
    ],
)
def test_times_written_with_escapes_are_refused_as_well(text: bytes) -> None:
    """JSON may escape any character: the year need not appear as it reads."""
    reasons = verdicts(text)
    assert reasons == [reasons[0]] * 3
    assert reasons[0].startswith("9999-12-31T23:59:59-14:00 is outside years 1-9999")


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59Z"]
)
def test_times_at_the_edges_but_inside_are_accepted(stamp: str) -> None:
    assert verdicts(event(at=stamp, seen=stamp)) == ["", "", ""]


def test_event_ids_must_be_usable_keys() -> None:
    assert verdicts(event(id="")) == ["Expected str of length >= 1 - at $.id"] * 3
    too_long = f"Expected str of length <= {MAX_ID_LENGTH} - at $.id"
    assert verdicts(event(id="x" * (MAX_ID_LENGTH + 1))) == [too_long] * 3
    assert verdicts(event(id="é" * MAX_ID_LENGTH)) == ["", "", ""]


def test_a_message_key_that_cannot_be_an_id_does_not_become_one() -> None:
    """An event without an id takes its message's key; one that no store could index is refused
    (a producer publishing straight onto the broker chose it)."""
    raw = orjson.dumps({"at": "2026-01-01T00:00:00Z"})
    for key in ("k\x00", "k" * (MAX_ID_LENGTH + 1)):
        rows, rejected = CODEC.decode([(key, raw, datetime.now(UTC))])
        assert not rows.rows
        assert "its message key cannot be one" in rejected[0][1].reason
    rows, rejected = CODEC.decode([("k-1", raw, datetime.now(UTC))])
    assert rows.rows[0][0] == "k-1"
    assert not rejected


@pytest.mark.parametrize(
    ("document", "exact"),
    [
        (event(), True),
        (event(seen=None, label="x", payload={"a": [1, 2.5, None, "é"]}), True),
        (event(at="2026-01-01T02:00:00+02:00", seen="2026-01-01T00:00:00"), True),  # naive: UTC
        ({"at": "2026-01-01T00:00:00Z"}, True),  # no id: the message key fills it
        (event(unknown="kept in extra"), False),
        (event(label="a\\u0000b"), False),  # text like the NUL escape: looked at closer
        (event(at="9999-12-31T23:59:59Z"), False),  # the calendar's edge: checked in UTC
        (event(label=7), False),  # invalid: the whole way words the reason
    ],
)
def test_the_one_step_decode_makes_the_rows_the_whole_way_makes(
    document: dict[str, Any], exact: bool
) -> None:
    raw = orjson.dumps(document)
    now = datetime.now(UTC)
    assert (CODEC.exact(raw) is not None) is exact
    rows, rejected = CODEC.decode([("message-key", raw, now)])
    whole: list[tuple[Any, ...]] = []
    reasons: list[str] = []
    try:
        whole.append(CODEC.row(orjson.loads(raw), "message-key", now))
    except ValueError as exc:
        reasons.append(str(exc))
    assert rows.rows == whole
    assert [r.reason for _, r in rejected] == reasons


FLAT = Dataset(  # no json field: a whole body or bundle can be decoded in one call
    name="flat",
    event_time="at",
    fields=(
        FieldSpec(name="id", type="string"),
        FieldSpec(name="at", type="timestamp", required=True),
        FieldSpec(name="label", type="string"),
        FieldSpec(name="count", type="int"),
    ),
)


def line(**values: Any) -> bytes:
    return orjson.dumps({"id": "f-1", "at": "2026-01-01T00:00:00Z", **values})


VALID = [line(id=f"f-{i}", count=i) for i in range(5)]
BODIES = {
    "all exact": VALID,
    "an unknown field": [*VALID, line(id="f-9", other=1)],
    "the NUL escape": [*VALID, line(id="f-9", label="a\\u0000b")],
    "the calendar's edge": [*VALID, line(id="f-9", at="0001-01-01T00:00:00Z")],
    "an invalid event": [*VALID, line(id="f-9", count="seven")],
    "no id": [*VALID, orjson.dumps({"at": "2026-01-01T00:00:00Z"})],
    "two events on a line": [VALID[0] + b" " + VALID[1], *VALID[2:]],
    "a line that is not JSON": [*VALID, b"{nope"],
}


@pytest.mark.parametrize("name", BODIES)
def test_a_text_decoded_in_one_call_gives_what_its_lines_give_one_by_one(name: str) -> None:
    lines = BODIES[name]
    text = b"\n".join(lines)
    codec, one_by_one = EventCodec(FLAT), EventCodec(FLAT)
    one_by_one.exact_lines = lambda text, lines: None  # type: ignore[method-assign]
    in_one_call = name in ("all exact", "no id")  # an event without id decodes: the key fills it
    assert (codec.exact_lines(text, len(lines)) is not None) is in_one_call
    now = datetime.now(UTC)
    messages = [(f"bundle.{i}", data, now) for i, data in enumerate(lines)]
    rows, rejected = codec.decode(messages, [(len(lines), text)])
    assert (rows, rejected) == one_by_one.decode(messages)
    body = text + b"\r\n\n"  # CRLF and a blank line: fine
    fast, slow = from_ndjson(body, codec, {}), from_ndjson(body, one_by_one, {})
    assert fast.rejected == slow.rejected
    assert len(fast.ids) == len(slow.ids)
    assert len(fast.messages) == len(slow.messages)
    # An event without an id is given a fresh one, different each time.
    assert [(m.key, m.data) for m in fast.messages if m.key.startswith("f-")] == [
        (m.key, m.data) for m in slow.messages if m.key.startswith("f-")
    ]
