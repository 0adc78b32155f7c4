"""Rule generation: deterministic, committed output up to date, the series names the dashboards
read, and the `slipstream slo generate` command."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from slipstream.slo import promql
from slipstream.slo.cli import slo_app
from slipstream.slo.rules import alert_groups, alert_names, error_ratio, recording_groups, render
from slipstream.slo.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "observability" / "slo" / "slos.yaml"
RULES = ROOT / "observability" / "prometheus" / "rules"
SPEC_SHOWN = "observability/slo/slos.yaml"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(SPEC)


def the_slo(spec: Spec, name: str) -> Any:
    return next(s for s in spec.slos if s.name == name)


def test_generation_is_deterministic(spec: Spec) -> None:
    assert render(spec, SPEC_SHOWN) == render(load_spec(SPEC), SPEC_SHOWN)


@pytest.mark.parametrize("name", sorted(render(load_spec(SPEC), SPEC_SHOWN)))
def test_committed_rules_equal_a_fresh_generation(spec: Spec, name: str) -> None:
    committed = RULES / name
    fresh = render(spec, SPEC_SHOWN)[name]
    assert committed.is_file(), f"{committed} is missing; run `slipstream slo generate`"
    assert committed.read_text() == fresh, (
        f"{committed.relative_to(ROOT)} is stale; run `slipstream slo generate` and commit it"
    )


def test_header_says_generated_and_by_which_command(spec: Spec) -> None:
    for text in render(spec, SPEC_SHOWN).values():
        assert text.startswith(
            "# Generated from observability/slo/slos.yaml by `slipstream slo generate`"
        )


def records(spec: Spec) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for group in recording_groups(spec):
        for rule in group["rules"]:
            found.setdefault(rule["record"], []).append(rule)
    return found


def test_series_names_the_dashboards_read(spec: Spec) -> None:
    windows = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    expected = {f"slipstream:slo_errors:ratio_rate{w}" for w in windows} | {
        "slipstream:slo_objective:ratio",
        "slipstream:slo_error_budget:ratio",
        "slipstream:slo_burn_rate:1h",
        "slipstream:slo_burn_rate:6h",
        "slipstream:slo_error_budget_remaining:ratio",
    }
    found = records(spec)
    assert set(found) == expected
    for name, rules in found.items():
        # one rule per SLO, each labelled with it
        assert sorted(r["labels"]["slo"] for r in rules) == sorted(s.name for s in spec.slos), name


def test_objective_and_budget_are_exact_constants(spec: Spec) -> None:
    found = records(spec)
    objective = {r["labels"]["slo"]: r["expr"] for r in found["slipstream:slo_objective:ratio"]}
    budget = {r["labels"]["slo"]: r["expr"] for r in found["slipstream:slo_error_budget:ratio"]}
    assert objective["api-availability"] == "vector(0.999)"
    assert budget["api-availability"] == "vector(0.001)"
    assert budget["read-latency-p95"] == "vector(0.05)"


def test_ratio_sli_counts_missing_bad_series_as_zero_and_no_traffic_as_absent(spec: Spec) -> None:
    expr = error_ratio(the_slo(spec, "ingest-acceptance"), "5m")
    selected = 'slipstream_http_requests_total{method="POST", route=~"/v1/datasets/\\\\{ds\\\\}/events|/push/.*"}'
    assert f"0 * sum by (env, system, dataset) (rate({selected}[5m]))" in expr
    assert f"(sum by (env, system, dataset) (rate({selected}[5m])) > 0)" in expr
    assert 'code=~"5.."}[5m]' in expr


def test_every_aggregation_keeps_the_fleet_labels(spec: Spec) -> None:
    # One evaluator may see many systems (a central Prometheus, a managed workspace).
    for slo in spec.slos:
        expr = error_ratio(slo, "5m")
        assert expr.count("sum by (env, system") == expr.count("sum")


def test_latency_sli_uses_the_le_label_as_the_client_writes_it(spec: Spec) -> None:
    freshness = error_ratio(the_slo(spec, "freshness"), "1h")
    assert 'slipstream_freshness_seconds_bucket{le="10.0"}[1h]' in freshness
    assert (
        "(sum by (env, system, dataset) (rate(slipstream_freshness_seconds_count[1h])) > 0)"
        in freshness
    )
    reads = error_ratio(the_slo(spec, "read-latency"), "5m")
    assert reads.startswith("1 - (\n  sum by (env, system, route, dataset) (rate(")
    assert 'le="0.1"}[5m]' in reads


def test_promql_strings_keep_regex_backslashes() -> None:
    assert promql.string("/v1/\\{ds\\}") == '"/v1/\\\\{ds\\\\}"'
    assert promql.matchers([("method", "GET"), ("code", "5..")], [("le", "0.1")]) == (
        '{method="GET", code=~"5..", le="0.1"}'
    )


WORKBOOK = {
    "FastBurn": ("page", [("14.4", "1h", "5m"), ("6", "6h", "30m")]),
    "SlowBurn": ("ticket", [("3", "1d", "2h"), ("1", "3d", "6h")]),
}


@pytest.mark.parametrize("slo_name", [s.name for s in load_spec(SPEC).slos])
def test_burn_alerts_follow_the_workbook_thresholds(spec: Spec, slo_name: str) -> None:
    slo = the_slo(spec, slo_name)
    rules = {r["alert"]: r for g in alert_groups(spec) for r in g["rules"]}
    budget = (Decimal(100) - Decimal(str(slo.objective))) / 100
    for alert in slo.alert_names:
        severity, conditions = WORKBOOK[alert[-8:]]
        rule = rules[alert]
        assert rule["labels"] == {"severity": severity, "slo": slo_name}
        arms = rule["expr"].split("\nor\n")
        assert len(arms) == len(conditions)
        for arm, (burn, long, short) in zip(arms, conditions, strict=True):
            limit = format((Decimal(burn) * budget).normalize(), "f")
            for window in (long, short):
                assert f'ratio_rate{window}{{slo="{slo_name}"}} > {limit}' in arm, (alert, window)
            assert " and" in arm
    scope = ", ".join(f"{label} {{{{ $labels.{label} }}}}" for label in slo.group_by)
    assert f"({scope})." in rules[slo.alert_names[0]]["annotations"]["summary"]


def test_every_alert_has_severity_summary_description_and_runbook(spec: Spec) -> None:
    names = alert_names(spec)
    assert len(names) == len(set(names)) == 2 * len(spec.slos) + len(spec.alerts)
    for group in alert_groups(spec):
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
            assert rule["annotations"]["runbook_url"] == (
                f"{spec.runbook_base_url}/{rule['alert']}.md"
            )


def test_generated_files_are_plain_yaml_without_aliases(spec: Spec) -> None:
    for text in render(spec, SPEC_SHOWN).values():
        assert "&id" not in text
        assert "*id" not in text
        assert yaml.safe_load(text)["groups"]


runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "observability" / "slo").mkdir(parents=True)
    shutil.copy(SPEC, tmp_path / "observability" / "slo" / "slos.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_writes_into_the_default_paths_of_the_working_directory(workdir: Path) -> None:
    result = runner.invoke(slo_app, ["generate"])
    assert result.exit_code == 0, result.output
    assert "wrote observability/prometheus/rules/slo-alerts.yaml" in result.output
    for name in ("slo-recording.yaml", "slo-alerts.yaml"):
        assert (workdir / "observability/prometheus/rules" / name).read_text() == (
            RULES / name
        ).read_text()
    result = runner.invoke(slo_app, ["generate", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_cli_check_names_the_stale_file(workdir: Path) -> None:
    assert runner.invoke(slo_app, ["generate", "--out", "rules"]).exit_code == 0
    alerts = workdir / "rules" / "slo-alerts.yaml"
    alerts.write_text(alerts.read_text().replace("> 0.0144", "> 0.02"))
    result = runner.invoke(slo_app, ["generate", "--out", "rules", "--check"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "stale: rules/slo-alerts.yaml differs from a fresh generation from "
        "observability/slo/slos.yaml; run `slipstream slo generate` and commit the result"
    )
    (workdir / "rules" / "slo-recording.yaml").unlink()
    result = runner.invoke(slo_app, ["generate", "--out", "rules", "--check"])
    assert result.exit_code == 1
    assert "stale: rules/slo-recording.yaml" in result.output


def test_cli_reports_a_bad_spec_in_one_line(workdir: Path) -> None:
    spec = workdir / "bad.yaml"
    spec.write_text(SPEC.read_text().replace("objective: 99.9", "objective: 100", 1))
    result = runner.invoke(slo_app, ["generate", "--spec", "bad.yaml"])
    assert result.exit_code == 2
    assert result.output == (
        "error: bad.yaml: SLO api-availability, objective: Input should be less than 100\n"
    )
    assert not (workdir / "observability" / "prometheus").exists()
