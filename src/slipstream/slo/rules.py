"""Prometheus recording rules and multi-window, multi-burn-rate alerts from the SLO spec.

The series names are a contract with the Grafana dashboards: `slipstream:slo_errors:ratio_rate<W>`,
`slipstream:slo_objective:ratio`, `slipstream:slo_error_budget:ratio`,
`slipstream:slo_burn_rate:1h|6h` and `slipstream:slo_error_budget_remaining:ratio`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

from slipstream.slo import promql
from slipstream.slo.spec import Slo, Spec

SHORT_WINDOWS = ("5m", "30m", "1h", "2h", "6h")
LONG_WINDOWS = ("1d", "3d", "30d")
BURN_RATE_WINDOWS = ("1h", "6h")
PERIOD_DAYS = 30

RECORDING_FILE = "slo-recording.yaml"
ALERTS_FILE = "slo-alerts.yaml"


@dataclass(frozen=True)
class BurnCondition:
    burn: Decimal
    long: str
    short: str


@dataclass(frozen=True)
class BurnAlert:
    """One alert per SLO: fires when any condition holds (both of its windows over the burn)."""

    severity: str
    speed: str
    conditions: tuple[BurnCondition, ...]


# The Google SRE workbook's thresholds for a 30-day budget: 2% of it spent in 1h or 5% in 6h
# pages; 10% in 1d or 10% in 3d opens a ticket. The short window makes an alert stop soon
# after the errors do.
FAST = BurnAlert(
    "page",
    "fast",
    (BurnCondition(Decimal("14.4"), "1h", "5m"), BurnCondition(Decimal(6), "6h", "30m")),
)
SLOW = BurnAlert(
    "ticket",
    "slowly",
    (BurnCondition(Decimal(3), "1d", "2h"), BurnCondition(Decimal(1), "3d", "6h")),
)


def ratio_series(window: str) -> str:
    return f"slipstream:slo_errors:ratio_rate{window}"


# Target labels that tell one deployment from another (prometheus.yml sets them). Kept by every
# aggregation, so one Prometheus, Thanos or managed workspace that sees a fleet of systems keeps
# one SLI per system instead of summing them; where they are absent they cost nothing.
FLEET_LABELS = ("env", "system")


def error_ratio(slo: Slo, window: str) -> str:
    """The SLI's error ratio over `window`, absent (not NaN) when nothing was counted."""
    sli = slo.sli
    selected = list(sli.selector.items())
    agg = promql.by([*FLEET_LABELS, *slo.group_by])
    if sli.type == "ratio":
        assert sli.bad is not None
        every = f"{sli.metric}{promql.matchers(selected)}"
        bad = f"{sli.metric}{promql.matchers(selected + list(sli.bad.items()))}"
        # A counter never incremented may be missing: count no bad series as zero bad events.
        return (
            f"(\n  {agg}(rate({bad}[{window}]))\n  or\n  0 * {agg}(rate({every}[{window}]))\n)\n"
            f"/\n({agg}(rate({every}[{window}])) > 0)\n"
        )
    assert sli.threshold is not None
    # The `le` label as the client library writes it (Python's repr of the float): 10 is
    # "10.0", 0.1 is "0.1"; any other spelling would match no series.
    le = repr(float(sli.threshold))
    fast = f"{sli.metric}_bucket{promql.matchers(selected, [('le', le)])}"
    every = f"{sli.metric}_count{promql.matchers(selected)}"
    return (
        f"1 - (\n  {agg}(rate({fast}[{window}]))\n  /\n  ({agg}(rate({every}[{window}])) > 0)\n)\n"
    )


def _slo_selector(slo: Slo) -> str:
    return promql.matchers([], [("slo", slo.name)])


def recording_groups(spec: Spec) -> list[dict[str, Any]]:
    constants: list[dict[str, Any]] = []
    short: list[dict[str, Any]] = []
    long: list[dict[str, Any]] = []
    for slo in spec.slos:
        labels = {"slo": slo.name}
        constants += [
            {
                "record": "slipstream:slo_objective:ratio",
                "expr": f"vector({promql.number(slo.objective_ratio)})",
                "labels": labels,
            },
            {
                "record": "slipstream:slo_error_budget:ratio",
                "expr": f"vector({promql.number(slo.budget)})",
                "labels": labels,
            },
        ]
        short += [
            {"record": ratio_series(w), "expr": error_ratio(slo, w), "labels": labels}
            for w in SHORT_WINDOWS
        ]
        # Burn rates follow the ratios in the same group, so they read this evaluation's values.
        short += [
            {
                "record": f"slipstream:slo_burn_rate:{w}",
                "expr": f"{ratio_series(w)}{_slo_selector(slo)} / {promql.number(slo.budget)}",
                "labels": labels,
            }
            for w in BURN_RATE_WINDOWS
        ]
        long += [
            {"record": ratio_series(w), "expr": error_ratio(slo, w), "labels": labels}
            for w in LONG_WINDOWS
        ]
        long.append(
            {
                "record": "slipstream:slo_error_budget_remaining:ratio",
                "expr": f"1 - {ratio_series('30d')}{_slo_selector(slo)} / {promql.number(slo.budget)}",
                "labels": labels,
            }
        )
    return [
        {"name": "slipstream-slo-objectives", "rules": constants},
        {"name": "slipstream-slo-errors-short", "rules": short},
        # Day-long windows read many samples and move slowly: once a minute is enough.
        {"name": "slipstream-slo-errors-long", "interval": "1m", "rules": long},
    ]


def _scope(slo: Slo) -> str:
    if not slo.group_by:
        return ""
    return " (" + ", ".join(f"{label} {{{{ $labels.{label} }}}}" for label in slo.group_by) + ")"


def _percent(ratio: Decimal) -> str:
    return promql.number(ratio * 100)


def _burn_rule(spec: Spec, slo: Slo, alert: BurnAlert, name: str) -> dict[str, Any]:
    arms = []
    for c in alert.conditions:
        limit = promql.number(c.burn * slo.budget)
        sel = _slo_selector(slo)
        arms.append(
            f"(\n  {ratio_series(c.long)}{sel} > {limit}\n  and\n"
            f"  {ratio_series(c.short)}{sel} > {limit}\n)\n"
        )
    windows = ", or ".join(
        f"over {promql.number(c.burn)}x the budget rate for {c.long} and {c.short}"
        for c in alert.conditions
    )
    first = alert.conditions[0]
    days = promql.number(round(PERIOD_DAYS / first.burn, 1))
    return {
        "alert": name,
        "expr": "or\n".join(arms),
        "labels": {"severity": alert.severity, "slo": slo.name},
        "annotations": {
            "summary": f"SLO {slo.name} is burning its error budget {alert.speed}{_scope(slo)}.",
            "description": (
                f"{slo.description} Objective {promql.number(slo.objective_ratio * 100)}% over "
                f"{spec.period}, a budget of {_percent(slo.budget)}% errors. Errors run {windows}. "
                f"At {promql.number(first.burn)}x the whole budget is spent in {days} days."
            ),
            "runbook_url": runbook_url(spec, name),
        },
    }


def runbook_url(spec: Spec, alert_name: str) -> str:
    return f"{spec.runbook_base_url}/{alert_name}.md"


def alert_groups(spec: Spec) -> list[dict[str, Any]]:
    burns = []
    for slo in spec.slos:
        fast, slow = slo.alert_names
        burns += [_burn_rule(spec, slo, FAST, fast), _burn_rule(spec, slo, SLOW, slow)]
    extra = [
        {
            "alert": a.name,
            "expr": a.expr.strip() + "\n",
            **({"for": a.for_} if a.for_ not in ("0", "0s") else {}),
            "labels": {"severity": a.severity},
            "annotations": {
                "summary": a.summary,
                "description": a.description,
                "runbook_url": runbook_url(spec, a.name),
            },
        }
        for a in spec.alerts
    ]
    return [
        {"name": "slipstream-slo-burn-rates", "rules": burns},
        {"name": "slipstream-alerts", "rules": extra},
    ]


def alert_names(spec: Spec) -> list[str]:
    return [rule["alert"] for group in alert_groups(spec) for rule in group["rules"]]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # anchors and aliases would make the rules harder to read and to grep


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _document(header: str, groups: list[dict[str, Any]]) -> str:
    body = yaml.dump(
        {"groups": groups}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000
    )
    return header + body


def render(spec: Spec, spec_path: str) -> dict[str, str]:
    """File name → contents; the same spec always gives the same bytes."""
    header = (
        f"# Generated from {spec_path} by `slipstream slo generate`; do not edit by hand.\n"
        "# Change the spec and run the command again (`slipstream slo generate --check` in CI\n"
        "# fails while this file differs from a fresh generation).\n"
    )
    return {
        RECORDING_FILE: _document(header, recording_groups(spec)),
        ALERTS_FILE: _document(header, alert_groups(spec)),
    }
