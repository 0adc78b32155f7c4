"""The Alertmanager config is valid, routes each alert by severity, and inhibits the symptom
alerts while a backend is down."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipstream.slo.rules import alert_groups
from slipstream.slo.spec import load_spec
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "observability" / "alertmanager" / "alertmanager.yml"
HOW = "apt-get install prometheus-alertmanager, or take amtool from a release on prometheus.io"
ALERTS = {
    rule["alert"]: rule
    for group in alert_groups(load_spec(ROOT / "observability" / "slo" / "slos.yaml"))
    for rule in group["rules"]
}
CAUSES = {"SlipstreamBrokerDown", "SlipstreamStoreDown"}
MATCHER = re.compile(r'^(\w+)(=~|!~|!=|=)"(.*)"$')


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("amtool", HOW)
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def test_amtool_check_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("severity", "receiver"), [("page", "pager"), ("ticket", "ticket")])
def test_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"severity={severity}",
        "alertname=SlipstreamExample",
        "slo=api-availability",
        "dataset=flights",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_alert_reaches_the_receiver_of_its_severity() -> None:
    receiver = {"page": "pager", "ticket": "ticket"}
    for name, rule in ALERTS.items():
        labels = [f"{k}={v}" for k, v in {"alertname": name, **rule["labels"]}.items()]
        result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
        assert result.stdout.strip() == receiver[rule["labels"]["severity"]], name


def test_grouped_by_alertname_slo_and_dataset() -> None:
    assert config()["route"]["group_by"] == ["alertname", "slo", "dataset"]


def test_no_secret_in_the_config() -> None:
    text = CONFIG.read_text()
    for receiver in config()["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            assert "routing_key" not in pagerduty
            assert pagerduty["routing_key_file"]
        for hook in receiver.get("webhook_configs", []):
            assert "credentials_file" in hook["http_config"]["authorization"]
    assert "token:" not in text
    assert "password" not in text


def matching(matchers: list[str]) -> set[str]:
    """The alert names that a list of Alertmanager matchers on alertname selects."""
    selected = set(ALERTS)
    for matcher in matchers:
        found = MATCHER.match(matcher)
        assert found, f"cannot read matcher {matcher!r}"
        label, op, value = found.groups()
        assert label == "alertname", f"inhibition keyed on {label}, expected alertname"
        if op == "=~":
            selected = {n for n in selected if re.fullmatch(value, n)}
        elif op == "=":
            selected = {n for n in selected if n == value}
        else:
            pytest.fail(f"unexpected operator in {matcher!r}")
    return selected


def test_backend_down_inhibits_the_symptoms() -> None:
    (rule,) = config()["inhibit_rules"]
    sources = matching(rule["source_matchers"])
    targets = matching(rule["target_matchers"])
    assert sources == CAUSES
    burns = {n for n in ALERTS if n.endswith(("FastBurn", "SlowBurn"))}
    assert targets == burns | {"SlipstreamNoEventsReceived"}
    assert not targets & CAUSES


def top_level_alternatives(regex: str) -> list[str]:
    """`A|B(C|D)` → ["A", "B(C|D)"]: split on the bars outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in regex:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def test_inhibit_rules_name_only_alerts_that_exist() -> None:
    for rule in config()["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            found = MATCHER.match(matcher)
            assert found
            # every literal alternative (no regex syntax) must be a real alert name
            for alternative in top_level_alternatives(found.group(3)):
                if re.fullmatch(r"\w+", alternative):
                    assert alternative in ALERTS, f"{alternative} is not an alert"
                else:
                    assert any(re.fullmatch(alternative, n) for n in ALERTS), alternative
