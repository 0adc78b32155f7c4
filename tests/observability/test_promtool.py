"""The rule files pass `promtool check rules`, the unit tests pass `promtool test rules`, and the
unit tests cover every alert both firing and staying quiet."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipstream.slo.rules import alert_names
from slipstream.slo.spec import load_spec
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "observability" / "prometheus" / "rules").glob("*.yaml"))
TESTS = sorted((ROOT / "observability" / "prometheus" / "tests").glob("*.yaml"))
HOW = "apt-get install prometheus, or take promtool from a release on prometheus.io"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", HOW)
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_there_are_rule_and_test_files() -> None:
    assert [p.name for p in RULES] == ["slo-alerts.yaml", "slo-recording.yaml"]
    assert len(TESTS) >= 2


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = promtool("check", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "warning" not in (result.stdout + result.stderr).lower()


@pytest.mark.slow
@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    result = promtool("test", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_cases() -> list[dict[str, Any]]:
    cases = []
    for path in TESTS:
        document = yaml.safe_load(path.read_text())
        for rule_file in document["rule_files"]:
            assert (path.parent / rule_file).is_file(), f"{path.name}: no rule file {rule_file}"
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append({**case, "file": path.name, "test": test["name"]})
    return cases


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    names = alert_names(load_spec(ROOT / "observability" / "slo" / "slos.yaml"))
    cases = alert_cases()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert sorted(set(names) - firing) == [], "alerts no promtool test sees firing"
    assert sorted(set(names) - quiet) == [], "alerts no promtool test sees quiet"
    assert sorted({c["alertname"] for c in cases} - set(names)) == [], "tests of unknown alerts"


def test_firing_cases_pin_labels_and_every_annotation() -> None:
    for case in alert_cases():
        for alert in case.get("exp_alerts") or []:
            where = f"{case['file']}: {case['test']}: {case['alertname']}"
            assert alert["exp_labels"]["severity"] in ("page", "ticket"), where
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, where
            assert alert["exp_annotations"]["runbook_url"].endswith(
                f"/docs/runbooks/{case['alertname']}.md"
            ), where
