"""The Grafana dashboards and the Prometheus config: valid, generated, and querying real series.

The helpers here (dashboard loading, variable substitution, series extraction) are shared with
tests/e2e/test_prometheus_live.py, which runs the same expressions against a live Prometheus.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from slipstream.metrics import Metrics
from slipstream.probe.metrics import ProbeMetrics
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "observability" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROMETHEUS = ROOT / "observability" / "prometheus"
RULES = PROMETHEUS / "rules"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PROMTOOL_HOW = "apt-get install prometheus (Debian) puts promtool in /usr/bin"

# What Grafana puts in place of its built-in variables when a panel runs for a 1 h range.
BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"

Json = dict[str, Any]


def load_dashboards() -> dict[str, Json]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: Json) -> Iterator[Json]:
    """Every panel, rows' nested panels included; rows themselves are left out."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(board: Json) -> dict[str, Json]:
    return {v["name"]: v for v in board["templating"]["list"]}


def variable_selectors(board: Json) -> list[tuple[str, str]]:
    """(variable name, the series selector of its label_values query)."""
    out = []
    for name, var in variables(board).items():
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
            assert match, f"variable {name}: expected label_values(SELECTOR, LABEL)"
            out.append((name, match.group(1)))
    return out


def dashboard_exprs(board: Json) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and variable query of a dashboard."""
    out = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in panels(board)
        for t in p["targets"]
    ]
    out += [(f"variable ${name}", selector) for name, selector in variable_selectors(board)]
    return out


def substitute(expr: str) -> str:
    """The expression as Prometheus receives it when every dashboard variable is "All"."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name.startswith("__"):
            return BUILTINS[name]  # an unknown built-in fails loudly here
        return ".*"

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def series_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, labels, keywords or numbers)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(GROUPING, " ", text)
    names = set()
    for token in re.finditer(r"\d[\w.]*|[a-zA-Z_:][\w:]*", text):
        word = token.group()
        follows = text[token.end() :].lstrip()[:1]
        if word[0].isdigit() or word.lower() in KEYWORDS or follows == "(":
            continue
        names.add(word)
    return names


def registry_series() -> set[str]:
    """Series names the server (Metrics) and the probe (ProbeMetrics) expose, by family type."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    probe = ProbeMetrics("flights")
    probe.last_success = 0.0  # the gauge is exposed once a run succeeded
    return {
        family.name + suffix
        for registry in (Metrics().registry, probe.registry)
        for family in registry.collect()
        for suffix in suffixes[family.type]
    }


def rule_files() -> list[Path]:
    return sorted(p for p in RULES.glob("*.y*ml") if p.is_file())


def recorded_series() -> set[str]:
    names = set()
    for path in rule_files():
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names |= {rule["record"] for rule in group.get("rules", []) if "record" in rule}
    return names


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts observability/grafana on sys.path for its package
    return module


BOARDS = load_dashboards()
BOARD_NAMES = sorted(BOARDS)


def test_both_dashboards_exist() -> None:
    assert BOARD_NAMES == ["slipstream-fleet.json", "slipstream-overview.json"]


def test_committed_json_is_the_generator_output() -> None:
    rendered = load_generator().render()
    assert sorted(rendered) == BOARD_NAMES
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} differs from observability/grafana/generate.py's output; run it"
        )


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_dashboard_shape(name: str) -> None:
    board = BOARDS[name]
    assert board["schemaVersion"] >= 39
    assert board["uid"] == name.removesuffix(".json")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} overflows the grid"
        assert panel["targets"], f"{panel['title']} has no query"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_every_panel_uses_the_datasource_variable(name: str) -> None:
    board = BOARDS[name]
    source = variables(board)["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    for panel in panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
    for var in variables(board).values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_dashboard_variables(name: str) -> None:
    board = BOARDS[name]
    found = variables(board)
    assert {"datasource", "env", "system", "dataset"} <= set(found)
    for var in ("env", "system", "dataset"):
        assert found[var]["includeAll"], var
        assert found[var]["allValue"] == ".*", var
    if name == "slipstream-fleet.json":
        assert found["system"]["multi"], "the fleet view compares systems"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_queries_are_driven_by_labels(name: str) -> None:
    """Every selector filters on the variables: no system, env or dataset is named in a query."""
    for where, expr in dashboard_exprs(BOARDS[name]):
        for label, value in re.findall(r'\b(env|system|dataset)\s*[=!]~?\s*"([^"]*)"', expr):
            assert value == f"${label}", f"{where}: hard-coded {label}={value!r} in {expr}"
        if where.startswith("panel"):
            for selector in re.findall(r"\{[^}]*\}", expr):
                assert 'env=~"$env"' in selector, f"{where}: {selector} ignores $env"
                assert 'system=~"$system"' in selector, f"{where}: {selector} ignores $system"


def test_fleet_dashboard_names_no_system() -> None:
    """No system appears anywhere in the fleet dashboard: not in variables, titles or queries."""
    board = BOARDS["slipstream-fleet.json"]
    system = variables(board)["system"]
    assert system["options"] == []
    assert system["current"]["value"] == ["$__all"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    example_systems = {config["global"]["external_labels"]["system"]} | {
        static["labels"]["system"]
        for job in config["scrape_configs"]
        for static in job["static_configs"]
    }
    text = json.dumps(board)
    for example in example_systems:
        assert example not in text


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_every_expression_is_valid_promql(name: str, tmp_path: Path) -> None:
    promtool = require_tool("promtool", PROMTOOL_HOW)
    exprs = dashboard_exprs(BOARDS[name])
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": substitute(e)} for i, (_, e) in enumerate(exprs)
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    index = "\n".join(f"expr_{i}: {where}: {e}" for i, (where, e) in enumerate(exprs))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{index}"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_raw_series_exist(name: str) -> None:
    """Every metric a panel reads is one Slipstream or its probe actually exports."""
    known = registry_series()
    for where, expr in dashboard_exprs(BOARDS[name]):
        for series in series_names(expr):
            if ":" not in series:
                assert series in known, f"{where}: {series} is not exported by slipstream"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_recorded_series_exist(name: str) -> None:
    """Every recorded series a panel reads is produced by a rule in observability/prometheus/rules."""
    recorded = recorded_series()
    if not recorded:
        pytest.skip(
            "no recording rules in observability/prometheus/rules yet (slipstream slo generate)"
        )
    for where, expr in dashboard_exprs(BOARDS[name]):
        for series in series_names(expr):
            if ":" in series:
                assert series in recorded, f"{where}: no rule records {series}"


def test_series_names_extraction() -> None:
    expr = (
        'topk(10, sum by (env, system) (rate(a_total{code=~"5..", x="y{z}"}[5m])) '
        "/ on (env) group_left (system) max without (le) (b:c:ratio)) > bool 0.5 and d_sum offset 1h"
    )
    assert series_names(expr) == {"a_total", "b:c:ratio", "d_sum"}
    assert substitute('x{a=~"$env", b=~"${system:regex}"}[$__rate_interval]') == (
        'x{a=~".*", b=~".*"}[5m]'
    )


def test_prometheus_config_is_valid() -> None:
    promtool = require_tool("promtool", PROMTOOL_HOW)
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yaml"]
    assert config["alerting"]["alertmanagers"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"slipstream-api", "slipstream-worker", "slipstream-probe"}
    for job in jobs.values():
        for static in job["static_configs"]:
            assert {"env", "system"} <= set(static["labels"]), job["job_name"]
            assert "component" not in static["labels"], "clashes with slipstream_backend_up"


def test_grafana_provisioning() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((provisioning / "dashboards" / "slipstream.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
