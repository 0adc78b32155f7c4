"""`slipstream publish`'s reading of a file and its choice of broker."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from slipstream.config import load_settings
from slipstream.datasets import Dataset
from slipstream.errors import ConfigError
from slipstream.events import EventCodec
from slipstream.publish import BadFile, broker_location, parse_file
from slipstream.registry import shown_url
from tests.helpers import flight_event


@pytest.fixture
def codec(flights: Dataset) -> EventCodec:
    return EventCodec(flights)


def test_ndjson_rejections_name_the_line_of_the_file(codec: EventCodec) -> None:
    invalid = orjson.dumps(flight_event(2, status="teleported"))
    lines = [b"", orjson.dumps(flight_event(1)), b"  ", b"{not json", b"\t", invalid, b""]
    parsed = parse_file(b"\r\n".join(lines) + b"\r\n", codec)
    assert [item["index"] for item in parsed.intake.rejected] == [1, 2]  # the API's numbering
    malformed = parsed.intake.rejected[0]["error"]
    assert malformed.startswith("line 4: "), "the intake names the same line for a bad line"
    first, second = parsed.rejections()
    assert first == malformed  # not "line 4: line 4: …"
    assert second.startswith("line 6: ")
    assert "teleported" in second


def test_json_rejections_name_the_array_index(codec: EventCodec) -> None:
    body = orjson.dumps([flight_event(1), {"status": "landed"}], option=orjson.OPT_INDENT_2)
    [rejection] = parse_file(body, codec).rejections()
    assert rejection.startswith("array index 1: ")
    assert "flight_id" in rejection


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"id": 1},\n', "not valid JSON: unexpected end of data at line 2, column 1"),
        (b"\n \r\n", "no events in it: it is empty or holds only blank lines"),
        (b"", "no events in it"),
    ],
)
def test_a_file_without_events_is_refused(codec: EventCodec, body: bytes, message: str) -> None:
    with pytest.raises(BadFile, match=re.escape(message)):
        parse_file(body, codec)


def test_the_broker_location_is_resolved_and_a_missing_queue_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        broker_location(load_settings())
    assert str(info.value).startswith(f"no queue at {tmp_path}/data/queue.db (")
    assert not (tmp_path / "data").exists()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "queue.db").touch()
    location = broker_location(load_settings())
    assert location == f"local:///./data/queue.db ({tmp_path}/data/queue.db)"
    monkeypatch.setenv("SLIPSTREAM_BROKER_URL", "nats://user:s3cret@nats.internal:4222")
    assert broker_location(load_settings()) == "nats://user:***@nats.internal:4222"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db:5432/events", "postgresql://app:***@db:5432/events"),
        ("nats://t0ken@nats:4222", "nats://***@nats:4222"),
        ("sqs://us-east-1?prefix=a", "sqs://us-east-1?prefix=a"),
        ("local:///./data/queue.db", "local:///./data/queue.db"),
        ("postgresql//app:pw@db/events", "***@db/events"),  # too malformed to parse
    ],
)
def test_shown_urls_hide_secrets(url: str, shown: str) -> None:
    assert shown_url(url) == shown
