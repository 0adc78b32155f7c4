from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from slipstream.datasets import load_catalog
from slipstream.events import EventCodec
from slipstream.intake import MalformedBody, from_json, from_ndjson
from tests.helpers import flight_event

CODEC = EventCodec(load_catalog(None).datasets["flights"])


def test_ndjson_good_lines_land_beside_bad_ones() -> None:
    body = b"\r\n".join(
        [
            orjson.dumps(flight_event(1)),
            b"",
            b'{"flight_id": "LA1"',
            orjson.dumps(flight_event(2, status="teleported")),
            orjson.dumps({k: v for k, v in flight_event(3).items() if k != "id"}),
        ]
    )
    intake = from_ndjson(body, CODEC, {})
    assert intake.ids[0] == "ev-0000001"
    assert len(intake.ids) == 2
    assert intake.ids[1] != "ev-0000003"
    assert [r["index"] for r in intake.rejected] == [1, 2]
    assert intake.rejected[0]["error"].startswith("line 3: not valid JSON")
    assert "Invalid enum value 'teleported' - at $.status" in intake.rejected[1]["error"]
    # Every event goes to the broker: the invalid ones to be quarantined with the reason.
    assert len(intake.messages) == 4
    generated = orjson.loads(intake.messages[3].data)
    assert generated["id"] == intake.ids[1]


def test_valid_ndjson_lines_are_published_as_sent() -> None:
    line = orjson.dumps(flight_event(7))
    intake = from_ndjson(line + b"\n", CODEC, {"dataset": "flights"})
    assert intake.messages[0].data == line
    assert intake.messages[0].key == "ev-0000007"


def test_json_document_that_does_not_parse_names_line_and_column() -> None:
    with pytest.raises(MalformedBody, match="line 2, column"):
        from_json(b'{"a": 1,\n  oops}', CODEC, {})


def test_json_array_and_single_object() -> None:
    assert from_json(orjson.dumps([flight_event(1), flight_event(2)]), CODEC, {}).accepted == 2
    single = from_json(orjson.dumps(flight_event(3)), CODEC, {})
    assert single.ids == ["ev-0000003"]
    assert from_json(b"[1, 2]", CODEC, {}).rejected[0]["error"] == "expected a JSON object, got int"


def test_codec_rows_keep_unknown_fields_and_read_naive_times_as_utc() -> None:
    received = datetime.now(UTC)
    event = flight_event(1, event_time="2026-11-24T10:00:00.123", tail_number="CC-BAW")
    rows, rejected = CODEC.decode([("k", orjson.dumps(event), received)])
    assert not rejected
    row = dict(zip(CODEC.columns, rows.rows[0], strict=True))
    assert row["event_time"] == datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)
    assert orjson.loads(row["extra"]) == {"tail_number": "CC-BAW"}
    assert row["_received_at"] == received


def test_codec_rejects_out_of_range_integers() -> None:
    for too_big in (b"9223372036854775808", b"123456789012345678901234567890"):
        raw = orjson.dumps(flight_event(1)).replace(
            b'"delay_minutes":1', b'"delay_minutes":' + too_big
        )
        rows, rejected = CODEC.decode([("k", raw, datetime.now(UTC))])
        assert not rows.rows
        assert "delay_minutes" in rejected[0][1].reason
