"""The fleet view: every system at once, by the env and system labels, worst first."""

from __future__ import annotations

from slipstream_dashboards.builder import (
    BUDGET_THRESHOLDS,
    BURN_THRESHOLDS,
    DATASET,
    RATE,
    SYSTEM,
    Json,
    Panel,
    Row,
    dashboard,
    instant,
    quantile,
    target,
    thresholds,
)


def fleet_slo_table() -> Panel:
    by = "env, system, slo"
    value_names = {
        "Value #A": "budget remaining",
        "Value #B": "burn rate 1h",
        "Value #C": "burn rate 6h",
    }
    return Panel(
        "SLO status by system",
        "One line per system and SLO, worst dataset or route; sort by a column to find the "
        "systems spending their budget.",
        [
            instant(
                f"min by ({by}) (slipstream:slo_error_budget_remaining:ratio{{{DATASET}}})",
                table=True,
            ),
            instant(f"max by ({by}) (slipstream:slo_burn_rate:1h{{{DATASET}}})", table=True),
            instant(f"max by ({by}) (slipstream:slo_burn_rate:6h{{{DATASET}}})", table=True),
        ],
        kind="table",
        width=24,
        height=12,
        options={
            "showHeader": True,
            "sortBy": [{"displayName": "budget remaining", "desc": False}],
        },
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "budget remaining"},
                "properties": [
                    {"id": "unit", "value": "percentunit"},
                    {"id": "thresholds", "value": BUDGET_THRESHOLDS},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                ],
            },
            *(
                {
                    "matcher": {"id": "byName", "options": name},
                    "properties": [
                        {"id": "decimals", "value": 2},
                        {"id": "thresholds", "value": BURN_THRESHOLDS},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                }
                for name in ("burn rate 1h", "burn rate 6h")
            ),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": value_names},
            },
        ],
    )


def fleet_rows() -> list[Row]:
    topk = "topk(10, "
    return [
        Row(
            "Fleet health",
            [
                Panel(
                    "Systems reporting",
                    "Systems with at least one scraped process.",
                    [instant(f"count(count by (env, system) (slipstream_backend_up{{{SYSTEM}}}))")],
                    kind="stat",
                    width=6,
                    height=5,
                    options={"graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}},
                ),
                Panel(
                    "Systems with a backend down",
                    "Systems where some process cannot reach its broker or store.",
                    [
                        instant(
                            "count(min by (env, system) "
                            f"(slipstream_backend_up{{{SYSTEM}}}) == 0) or vector(0)"
                        )
                    ],
                    kind="stat",
                    width=6,
                    height=5,
                    options={
                        "colorMode": "background",
                        "graphMode": "none",
                        "reduceOptions": {"calcs": ["lastNotNull"]},
                    },
                    defaults={"thresholds": thresholds((None, "green"), (1, "red"))},
                ),
                Panel(
                    "Backends down",
                    "Which system, which component; empty when all is well.",
                    [
                        instant(
                            f"min by (env, system, component) (slipstream_backend_up{{{SYSTEM}}}) == 0",
                            table=True,
                        )
                    ],
                    kind="table",
                    width=12,
                    height=5,
                    transformations=[
                        {
                            "id": "organize",
                            "options": {"excludeByName": {"Time": True, "Value": True}},
                        }
                    ],
                ),
            ],
        ),
        Row("Service level objectives across systems", [fleet_slo_table()]),
        Row(
            "Worst burn rates",
            [
                Panel(
                    "Top 10 burn rates, 1 h",
                    "The systems and SLOs spending budget fastest right now.",
                    [
                        instant(
                            f"{topk}max by (env, system, slo) (slipstream:slo_burn_rate:1h{{{DATASET}}}))",
                            "{{system}} {{slo}}",
                        )
                    ],
                    kind="bargauge",
                    width=8,
                    height=9,
                    options={"orientation": "horizontal", "displayMode": "gradient"},
                    defaults={"thresholds": BURN_THRESHOLDS, "decimals": 2},
                ),
                Panel(
                    "Top 10 burn rates, 6 h",
                    "Sustained budget spend.",
                    [
                        instant(
                            f"{topk}max by (env, system, slo) (slipstream:slo_burn_rate:6h{{{DATASET}}}))",
                            "{{system}} {{slo}}",
                        )
                    ],
                    kind="bargauge",
                    width=8,
                    height=9,
                    options={"orientation": "horizontal", "displayMode": "gradient"},
                    defaults={"thresholds": BURN_THRESHOLDS, "decimals": 2},
                ),
                Panel(
                    "Lowest error budget remaining",
                    "The ten system/SLO pairs closest to an exhausted budget.",
                    [
                        instant(
                            "bottomk(10, min by (env, system, slo) "
                            f"(slipstream:slo_error_budget_remaining:ratio{{{DATASET}}}))",
                            "{{system}} {{slo}}",
                        )
                    ],
                    kind="bargauge",
                    unit="percentunit",
                    width=8,
                    height=9,
                    options={"orientation": "horizontal", "displayMode": "gradient"},
                    defaults={"min": 0, "max": 1, "thresholds": BUDGET_THRESHOLDS},
                ),
            ],
        ),
        Row(
            "Throughput and latency, aggregated",
            [
                Panel(
                    "Events written per second by environment",
                    "Sum over the selected systems and datasets.",
                    [
                        target(
                            "sum by (env) (rate(slipstream_events_written_total"
                            f"{{{DATASET}}}{RATE}))",
                            "written {{env}}",
                        ),
                        target(
                            "sum by (env) (rate(slipstream_events_ingested_total"
                            f"{{{DATASET}}}{RATE}))",
                            "ingested {{env}}",
                        ),
                    ],
                    unit="ops",
                ),
                Panel(
                    "Top 10 systems by events written",
                    "Where the load is.",
                    [
                        target(
                            f"{topk}sum by (env, system) (rate(slipstream_events_written_total"
                            f"{{{DATASET}}}{RATE})))",
                            "{{system}}",
                        )
                    ],
                    unit="ops",
                ),
                Panel(
                    "Requests per second by environment and class",
                    "2xx, 4xx, 5xx over every system of the selection.",
                    [
                        target(
                            f"sum by (env) (rate(slipstream_http_requests_total"
                            f'{{{DATASET}, code=~"{c}.."}}{RATE}))',
                            f"{{{{env}}}} {c}xx",
                        )
                        for c in "245"
                    ],
                    unit="reqps",
                ),
                Panel(
                    "Top 10 systems by 5xx ratio",
                    "Server errors over all requests, per system.",
                    [
                        target(
                            f"{topk}sum by (env, system) (rate(slipstream_http_requests_total"
                            f'{{{DATASET}, code=~"5.."}}{RATE})) / sum by (env, system) '
                            f"(rate(slipstream_http_requests_total{{{DATASET}}}{RATE})))",
                            "{{system}}",
                        )
                    ],
                    unit="percentunit",
                ),
                Panel(
                    "Top 10 systems by freshness p99",
                    "Publish to queryable; the SLO is 10 s.",
                    [
                        target(
                            f"{topk}{quantile(0.99, 'slipstream_freshness_seconds', 'env, system')})",
                            "{{system}}",
                        )
                    ],
                    unit="s",
                ),
                Panel(
                    "Top 10 broker backlogs",
                    "Unacked messages per system and dataset.",
                    [
                        target(
                            f"{topk}max by (env, system, dataset) "
                            f"(slipstream_broker_backlog{{{DATASET}}}))",
                            "{{system}} {{dataset}}",
                        )
                    ],
                ),
                Panel(
                    "Top 10 systems by dead letters and quarantine",
                    "Messages set aside per second.",
                    [
                        target(
                            f"{topk}sum by (env, system) (rate(slipstream_events_dead_lettered_total"
                            f"{{{DATASET}}}{RATE})))",
                            "dead-lettered {{system}}",
                        ),
                        target(
                            f"{topk}sum by (env, system) (rate(slipstream_events_quarantined_total"
                            f"{{{DATASET}}}{RATE})))",
                            "quarantined {{system}}",
                        ),
                    ],
                    unit="ops",
                ),
                Panel(
                    "Failing probes",
                    "Probe runs that did not read back what they published, per system.",
                    [
                        target(
                            f"{topk}sum by (env, system) (rate(slipstream_probe_runs_total"
                            f'{{{DATASET}, result=~"mismatch|failed"}}{RATE})))',
                            "{{system}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
    ]


def fleet() -> Json:
    return dashboard(
        "slipstream-fleet",
        "Slipstream / Fleet",
        "Every Slipstream system at once, by the env and system target labels.",
        fleet_rows(),
        system_multi=True,
    )
