"""The SLO spec: the committed one is valid, and each kind of mistake gets a message that names
the SLO (or alert) and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipstream.slo.spec import SpecError, exported_histograms, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "observability" / "slo" / "slos.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return data


def slo(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["slos"] if s["name"] == name)
    return found


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "slos.yaml", exported_histograms())
    return str(caught.value)


def test_the_committed_spec_is_valid() -> None:
    spec = load_spec(SPEC)
    assert spec.period == "30d"
    assert [s.name for s in spec.slos] == [
        "api-availability",
        "read-latency",
        "read-latency-p95",
        "ingest-acceptance",
        "freshness",
        "probe-correctness",
    ]
    freshness = next(s for s in spec.slos if s.name == "freshness")
    assert str(freshness.objective_ratio) == "0.99"
    assert str(freshness.budget) == "0.01"
    api = next(s for s in spec.slos if s.name == "api-availability")
    assert str(api.budget) == "0.001"  # exact, not 0.0009999999999998899


def test_thresholds_are_checked_against_the_histograms_slipstream_exports() -> None:
    histograms = exported_histograms()
    assert 10.0 in histograms["slipstream_freshness_seconds"]
    assert 0.1 in histograms["slipstream_http_request_duration_seconds"]


@pytest.mark.parametrize("objective", [0, 100, 120, -5])
def test_objective_outside_0_100(raw: dict[str, Any], objective: float) -> None:
    slo(raw, "freshness")["objective"] = objective
    message = error_of(raw)
    assert "SLO freshness, objective:" in message
    assert "than 0" in message or "than 100" in message


def test_objective_too_low_for_the_fast_burn_to_ever_page(raw: dict[str, Any]) -> None:
    slo(raw, "freshness")["objective"] = 90
    assert error_of(raw) == (
        "slos.yaml: SLO freshness: objective 90 leaves a budget the fast-burn alert can never "
        "reach; use an objective above 93.06"
    )


def test_latency_threshold_missing(raw: dict[str, Any]) -> None:
    del slo(raw, "read-latency")["sli"]["threshold"]
    assert error_of(raw) == (
        "slos.yaml: SLO read-latency, sli: a latency SLI needs `threshold`: seconds, "
        "a bucket bound of the histogram"
    )


def test_latency_threshold_not_a_bucket_bound(raw: dict[str, Any]) -> None:
    slo(raw, "freshness")["sli"]["threshold"] = 15
    message = error_of(raw)
    assert message.startswith(
        "slos.yaml: SLO freshness, sli: threshold 15 is not a bucket bound of "
        "slipstream_freshness_seconds; use one of 0.05, 0.1,"
    )
    assert "10, 30" in message


def test_latency_metric_given_with_its_suffix(raw: dict[str, Any]) -> None:
    slo(raw, "read-latency")["sli"]["metric"] = "slipstream_http_request_duration_seconds_bucket"
    assert "give the histogram's name without the suffix" in error_of(raw)


def test_ratio_without_bad(raw: dict[str, Any]) -> None:
    del slo(raw, "api-availability")["sli"]["bad"]
    assert error_of(raw) == (
        "slos.yaml: SLO api-availability, sli: a ratio SLI needs `bad`: the labels (regexes) "
        "of bad events"
    )


def test_bad_regex_in_a_selector(raw: dict[str, Any]) -> None:
    slo(raw, "api-availability")["sli"]["selector"] = {"route": "/v1/(.*"}
    message = error_of(raw)
    assert message.startswith("slos.yaml: SLO api-availability, sli.selector: route: '/v1/(.*'")
    assert "not a valid regular expression" in message


def test_duplicate_slo_names(raw: dict[str, Any]) -> None:
    raw["slos"].append(copy.deepcopy(slo(raw, "freshness")))
    assert (
        error_of(raw) == "slos.yaml: top level: two SLOs are named freshness; names must be unique"
    )


def test_an_extra_alert_named_like_a_generated_one(raw: dict[str, Any]) -> None:
    raw["alerts"][0]["name"] = "SlipstreamFreshnessFastBurn"
    assert "two alerts are named SlipstreamFreshnessFastBurn" in error_of(raw)


def test_unknown_field_is_an_error_not_ignored(raw: dict[str, Any]) -> None:
    slo(raw, "freshness")["objectve"] = 99
    assert error_of(raw) == (
        "slos.yaml: SLO freshness, objectve: unknown field; remove it or fix its spelling"
    )


def test_missing_field_names_the_alert(raw: dict[str, Any]) -> None:
    del raw["alerts"][2]["summary"]
    assert error_of(raw) == (
        "slos.yaml: alert SlipstreamBrokerDown, summary: missing; add it "
        "(the format is in observability/slo/README.md)"
    )


def test_bad_severity_and_duration(raw: dict[str, Any]) -> None:
    raw["alerts"][1]["severity"] = "critical"
    raw["alerts"][1]["for"] = "ten minutes"
    lines = error_of(raw).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("slos.yaml: alert SlipstreamDeadLettersGrowing, severity:")
    assert lines[1].startswith("slos.yaml: alert SlipstreamDeadLettersGrowing, for:")


def test_only_a_30_day_period(raw: dict[str, Any]) -> None:
    raw["period"] = "28d"
    assert error_of(raw).startswith("slos.yaml: period: Input should be '30d'")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError,
        match=r"cannot read the SLO spec .*; run from the repository root or pass --spec PATH",
    ):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("slos:\n  - name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML at line 3, column 1"):
        load_spec(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match=r"expected a mapping with version, service, slos"):
        load_spec(listing)
