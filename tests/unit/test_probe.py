"""The probe's event building, comparison, result lines, metrics and exit codes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from slipstream.cli import app
from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import PROBE_ID_PREFIX, EventCodec
from slipstream.probe.event import build_event, differences, probe_id, same
from slipstream.probe.metrics import ProbeMetrics
from slipstream.probe.run import ProbeResult
from tests.services import free_port

NOW = datetime(2026, 11, 24, 10, 15, 30, 123456, tzinfo=UTC)


@pytest.fixture
def custom() -> Dataset:
    """Another key and event-time name, and a field of every type."""
    return Dataset(
        name="readings",
        key="reading_id",
        event_time="taken_at",
        fields=(
            FieldSpec(name="reading_id", type="string"),
            FieldSpec(name="taken_at", type="timestamp", required=True),
            FieldSpec(name="sensor", type="string", required=True),
            FieldSpec(name="count", type="int"),
            FieldSpec(name="value", type="float", required=True),
            FieldSpec(name="healthy", type="bool"),
            FieldSpec(name="calibrated_at", type="timestamp"),
            FieldSpec(name="unit", type="enum", values=("c", "f", "k"), required=True),
            FieldSpec(name="raw", type="json"),
        ),
    )


def test_probe_ids_carry_the_marker_and_differ() -> None:
    first, second = probe_id(), probe_id()
    assert first.startswith(PROBE_ID_PREFIX)
    assert len(first) == len(PROBE_ID_PREFIX) + 36  # a UUID
    assert first != second


def test_flights_event_is_valid_and_fills_every_field(flights: Dataset) -> None:
    event = build_event(flights, "probe-1", NOW, 10)

    assert set(event) == set(flights.field_names)
    assert event["id"] == "probe-1"
    assert event["status"] in flights.field("status").values  # type: ignore[union-attr]
    assert event["event_time"] == "2026-11-24T10:15:30.123+00:00"  # to the millisecond
    assert event["delay_minutes"] == 10
    codec = EventCodec(flights)
    codec.validate(event)
    assert codec.event_id(event) == "probe-1"


def test_custom_dataset_event_is_valid_for_every_type(custom: Dataset) -> None:
    event = build_event(custom, "probe-2", NOW.astimezone(timezone(timedelta(hours=-3))), 7)

    EventCodec(custom).validate(event)
    assert event["reading_id"] == "probe-2"
    assert event["taken_at"] == event["calibrated_at"] == "2026-11-24T10:15:30.123+00:00"
    assert (event["count"], event["value"], event["healthy"]) == (7, 7.5, False)
    assert event["unit"] == "f"  # values[7 % 3]
    assert event["raw"]["probe"] == "probe-2"
    other = build_event(custom, "probe-3", NOW, 8)
    assert (other["count"], other["healthy"], other["unit"]) == (8, True, "k")


def test_an_identical_read_back_has_no_differences(custom: Dataset) -> None:
    sent = build_event(custom, "probe-2", NOW, 3)
    got = {**sent, "extra": None}

    assert differences(custom, sent, got) == []


def test_timestamps_compare_as_instants(custom: Dataset) -> None:
    sent = build_event(custom, "probe-2", NOW, 3)
    got = {
        **sent,
        "taken_at": "2026-11-24T10:15:30.123000Z",
        "calibrated_at": "2026-11-24T07:15:30.123-03:00",
    }
    assert differences(custom, sent, got) == []

    later = {**got, "taken_at": "2026-11-24T10:15:30.124Z"}
    assert differences(custom, sent, later) == [
        "field 'taken_at': sent '2026-11-24T10:15:30.123+00:00', "
        "read back '2026-11-24T10:15:30.124Z'"
    ]
    spec = custom.field("taken_at")
    assert spec is not None
    assert same(spec, "2026-11-24T10:15:30", "2026-11-24T10:15:30+00:00")  # no offset: UTC
    assert not same(spec, "2026-11-24T10:15:30Z", "not a time")
    assert not same(spec, "2026-11-24T10:15:30Z", None)


def test_each_differing_or_missing_field_is_named(custom: Dataset) -> None:
    sent = build_event(custom, "probe-2", NOW, 4)
    got = {**sent, "count": True, "value": 4.25, "unit": "c", "raw": {"probe": "other"}}
    del got["sensor"]

    found = differences(custom, sent, got)

    assert found == [
        "field 'sensor' is missing from the event read back",
        "field 'count': sent 4, read back True",
        "field 'value': sent 4.5, read back 4.25",
        "field 'unit': sent 'f', read back 'c'",
        f"field 'raw': sent {sent['raw']!r}, read back {{'probe': 'other'}}",
    ]


def test_numbers_compare_by_value_not_by_json_spelling(custom: Dataset) -> None:
    value, count, healthy = (custom.field(n) for n in ("value", "count", "healthy"))
    assert value is not None
    assert count is not None
    assert healthy is not None
    assert same(value, 3.0, 3)  # a float field read back as 3 is the same number
    assert not same(count, 3, 3.0)
    assert not same(count, 1, True)
    assert not same(healthy, True, 1)
    assert same(healthy, False, False)


def test_result_lines() -> None:
    ok = ProbeResult("flights", "ok", "", "probe-1", 0.0421)
    mismatch = ProbeResult(
        "flights", "mismatch", "field 'gate': sent 'a', read back 'b'", "probe-2", 1.5
    )
    failed = ProbeResult("flights", "failed", "cannot connect to http://x: connection refused")

    assert ok.line() == "ok flights probe-1 round trip 0.042s"
    assert mismatch.line() == (
        "mismatch flights probe-2 round trip 1.500s: field 'gate': sent 'a', read back 'b'"
    )
    assert failed.line() == "failed flights: cannot connect to http://x: connection refused"


def samples(metrics: ProbeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_names_labels_and_values() -> None:
    metrics = ProbeMetrics("flights")
    assert (
        samples(metrics)[
            ("slipstream_probe_runs_total", (("dataset", "flights"), ("result", "ok")))
        ]
        == 0
    )
    assert "slipstream_probe_last_success_timestamp_seconds" not in {k[0] for k in samples(metrics)}

    metrics.record(ProbeResult("flights", "ok", "", "probe-1", 0.04), now=1000.0)
    metrics.record(ProbeResult("flights", "mismatch", "x", "probe-2", 0.3), now=1001.0)
    metrics.record(ProbeResult("flights", "failed", "y"), now=1002.0)

    got = samples(metrics)
    ds = ("dataset", "flights")
    for result in ("ok", "mismatch", "failed"):
        assert got[("slipstream_probe_runs_total", (ds, ("result", result)))] == 1
    assert got[("slipstream_probe_round_trip_seconds_bucket", (ds, ("le", "0.05")))] == 1
    assert got[("slipstream_probe_round_trip_seconds_bucket", (ds, ("le", "0.5")))] == 2
    assert got[("slipstream_probe_round_trip_seconds_count", (ds,))] == 2
    assert got[("slipstream_probe_round_trip_seconds_sum", (ds,))] == pytest.approx(0.34)
    assert got[("slipstream_probe_last_success_timestamp_seconds", (ds,))] == 1000.0


def test_metrics_resume_from_what_a_pushgateway_holds() -> None:
    earlier = ProbeMetrics("flights")
    earlier.record(ProbeResult("flights", "ok", "", "probe-1", 0.04), now=1000.0)
    earlier.record(ProbeResult("flights", "failed", "y"), now=1001.0)
    # A Pushgateway adds the grouping labels to every sample it exposes.
    pushed = (
        generate_latest(earlier.registry)
        .decode()
        .replace('dataset="flights"', 'dataset="flights",instance="",job="probe"')
    )
    other_job = pushed.replace('job="probe"', 'job="other"')

    later = ProbeMetrics("flights")
    later.resume(text_string_to_metric_families(pushed + other_job), "probe")
    later.record(ProbeResult("flights", "ok", "", "probe-3", 2.0), now=2000.0)

    got = samples(later)
    ds = ("dataset", "flights")
    assert got[("slipstream_probe_runs_total", (ds, ("result", "ok")))] == 2
    assert got[("slipstream_probe_runs_total", (ds, ("result", "failed")))] == 1
    assert got[("slipstream_probe_round_trip_seconds_bucket", (ds, ("le", "0.05")))] == 1
    assert got[("slipstream_probe_round_trip_seconds_bucket", (ds, ("le", "2.5")))] == 2
    assert got[("slipstream_probe_round_trip_seconds_count", (ds,))] == 2
    assert got[("slipstream_probe_last_success_timestamp_seconds", (ds,))] == 2000.0
    fresh = ProbeMetrics("other_dataset")
    fresh.resume(text_string_to_metric_families(pushed), "probe")
    assert sum(fresh.runs.values()) == 0


runner = CliRunner()


def test_once_against_a_closed_port_exits_1_saying_why() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = runner.invoke(
        app, ["probe", "--url", url, "--dataset", "flights", "--once", "--timeout", "5"]
    )

    assert result.exit_code == 1
    assert result.stdout.strip() == f"failed flights: cannot connect to {url}: connection refused"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--url", "127.0.0.1:8080"], "--url must be an http:// or https:// URL"),
        (["--url", "http://h", "--interval", "0"], "--interval and --timeout must be more than 0"),
        (["--url", "http://h", "--timeout", "-1"], "--interval and --timeout must be more than 0"),
        (
            ["--url", "http://h", "--once", "--metrics-port", "9100"],
            "with --once use --pushgateway",
        ),
        (["--url", "http://h", "--pushgateway", "pgw:9091"], "--pushgateway must be an http://"),
        (["--url", "http://h", "--metrics-port", "70000"], "--metrics-port must be between"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], complaint: str) -> None:
    result = runner.invoke(app, ["probe", "--dataset", "flights", *args])

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert complaint in lines[0]


def test_a_metrics_port_in_use_exits_2_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["probe", "--url", "http://127.0.0.1:1", "--dataset", "flights"]

        result = runner.invoke(app, [*args, "--metrics-port", str(port)])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: cannot serve metrics on port {port}: address already in use"
    )
