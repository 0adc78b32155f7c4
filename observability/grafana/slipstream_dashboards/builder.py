"""Building blocks of the Slipstream dashboards: queries, panels, a grid layout, variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]

# Label matchers every query carries; `=~` so the "All" value (.*) and multi-select both work.
SYSTEM = 'env=~"$env", system=~"$system"'
DATASET = f'{SYSTEM}, dataset=~"$dataset"'
RATE = "[$__rate_interval]"


def quantile(q: float, metric: str, by: str, matchers: str = DATASET) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{matchers}}}{RATE})))"


def target(expr: str, legend: str = "", **extra: Any) -> Json:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, **extra}


def instant(expr: str, legend: str = "", table: bool = False) -> Json:
    """An instant query: one value per series, as a bar or stat each, or as table rows."""
    return target(
        expr, legend, instant=True, range=False, format="table" if table else "time_series"
    )


@dataclass
class Panel:
    title: str
    description: str
    targets: list[Json]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 8
    height: int = 8
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)


@dataclass
class Row:
    title: str
    panels: list[Panel]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


UP_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    }
]
BUDGET_THRESHOLDS = thresholds((None, "red"), (0.25, "orange"), (0.5, "green"))
# 14.4 over 1 h and 6 over 6 h are the page thresholds of the multi-window burn-rate alerts.
BURN_THRESHOLDS = thresholds((None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red"))


def render_panel(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    refs = "ABCDEFGHIJ"
    field_config: Json = {
        "defaults": {"unit": panel.unit, **panel.defaults},
        "overrides": panel.overrides,
    }
    out: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": field_config,
        "options": panel.options,
        "targets": [{**t, "refId": refs[i]} for i, t in enumerate(panel.targets)],
    }
    if panel.transformations:
        out["transformations"] = panel.transformations
    return out


def layout(rows: list[Row]) -> list[Json]:
    """Rows span the width; panels fill each row left to right and wrap at 24 columns."""
    out: list[Json] = []
    y = 0
    panel_id = 1
    for row in rows:
        out.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            out.append(render_panel(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return out


def query_variable(name: str, label: str, metric: str, multi: bool) -> Json:
    definition = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def variables(system_multi: bool) -> list[Json]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        query_variable("env", "Environment", "slipstream_backend_up", multi=True),
        query_variable(
            "system", "System", 'slipstream_backend_up{env=~"$env"}', multi=system_multi
        ),
        query_variable(
            "dataset", "Dataset", f"slipstream_events_ingested_total{{{SYSTEM}}}", multi=True
        ),
    ]


def dashboard(uid: str, title: str, description: str, rows: list[Row], system_multi: bool) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["slipstream"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [
            {
                "title": "Slipstream dashboards",
                "type": "dashboards",
                "tags": ["slipstream"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": variables(system_multi)},
        "panels": layout(rows),
    }
