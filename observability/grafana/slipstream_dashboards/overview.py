"""The one-system view: SLOs, the HTTP API per route, the pipeline per dataset, the probe."""

from __future__ import annotations

from slipstream_dashboards.builder import (
    BUDGET_THRESHOLDS,
    BURN_THRESHOLDS,
    DATASET,
    RATE,
    SYSTEM,
    UP_MAPPING,
    Json,
    Panel,
    Row,
    dashboard,
    instant,
    quantile,
    target,
    thresholds,
)


def slo_row() -> Row:
    return Row(
        "Service level objectives",
        [
            Panel(
                "Error budget remaining",
                "Share of the 30-day error budget left, per SLO (worst dataset or route).",
                [
                    instant(
                        f"min by (slo) (slipstream:slo_error_budget_remaining:ratio{{{DATASET}}})",
                        "{{slo}}",
                    )
                ],
                kind="bargauge",
                unit="percentunit",
                width=8,
                options={"orientation": "horizontal", "displayMode": "basic"},
                defaults={"min": 0, "max": 1, "thresholds": BUDGET_THRESHOLDS},
            ),
            Panel(
                "Burn rate, 1 h window",
                "Errors over the last hour relative to the SLO's allowance; 1 spends the budget "
                "in exactly 30 days, 14.4 pages.",
                [
                    target(
                        f"max by (slo) (slipstream:slo_burn_rate:1h{{{DATASET}}})",
                        "{{slo}}",
                    )
                ],
                defaults={
                    "thresholds": BURN_THRESHOLDS,
                    "custom": {"thresholdsStyle": {"mode": "dashed"}},
                },
            ),
            Panel(
                "Burn rate, 6 h window",
                "The slower window of the multi-window alert; 6 pages.",
                [
                    target(
                        f"max by (slo) (slipstream:slo_burn_rate:6h{{{DATASET}}})",
                        "{{slo}}",
                    )
                ],
                defaults={
                    "thresholds": BURN_THRESHOLDS,
                    "custom": {"thresholdsStyle": {"mode": "dashed"}},
                },
            ),
        ],
    )


def http_row() -> Row:
    requests = f"slipstream_http_requests_total{{{DATASET}}}"
    errors = f'slipstream_http_requests_total{{{DATASET}, code=~"5.."}}'
    return Row(
        "HTTP API: rate, errors, duration per route",
        [
            Panel(
                "Requests per second by route",
                "Route templates, never raw paths.",
                [
                    target(
                        f"sum by (route, method) (rate({requests}{RATE}))", "{{method}} {{route}}"
                    )
                ],
                unit="reqps",
            ),
            Panel(
                "Server errors (5xx) ratio by route",
                "Share of requests answered 5xx; a 503 is back-pressure or a broker outage.",
                [
                    target(
                        f"sum by (route, method) (rate({errors}{RATE})) "
                        f"/ sum by (route, method) (rate({requests}{RATE}))",
                        "{{method}} {{route}}",
                    )
                ],
                unit="percentunit",
            ),
            Panel(
                "Responses by status code",
                "4xx are the clients' mistakes and do not count against the SLOs.",
                [target(f"sum by (code) (rate({requests}{RATE}))", "{{code}}")],
                unit="reqps",
                options={"legend": {"displayMode": "list", "placement": "bottom"}},
                defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}},
            ),
            Panel(
                "Latency p50 by route",
                "Median request duration.",
                [
                    target(
                        quantile(0.5, "slipstream_http_request_duration_seconds", "route, method"),
                        "{{method}} {{route}}",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Latency p99 by route",
                "The read-latency SLO counts GETs under 100 ms.",
                [
                    target(
                        quantile(0.99, "slipstream_http_request_duration_seconds", "route, method"),
                        "{{method}} {{route}}",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Latency heatmap",
                "Requests per latency bucket over time, every route of the selection.",
                [
                    target(
                        "sum by (le) (increase(slipstream_http_request_duration_seconds_bucket"
                        f"{{{DATASET}}}{RATE}))",
                        "{{le}}",
                        format="heatmap",
                    )
                ],
                kind="heatmap",
                unit="s",
                options={
                    "calculate": False,
                    "yAxis": {"unit": "s"},
                    "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential"},
                    "cellGap": 1,
                    "tooltip": {"mode": "single", "yHistogram": True},
                },
            ),
        ],
    )


def pipeline_row() -> Row:
    def per_dataset(metric: str, legend: str) -> Json:
        return target(f"sum by (dataset) (rate({metric}{{{DATASET}}}{RATE}))", legend)

    return Row(
        "Pipeline: broker, worker, store",
        [
            Panel(
                "Events per second",
                "Accepted at ingest, made durable on the broker, newly written to the store.",
                [
                    per_dataset("slipstream_events_ingested_total", "ingested {{dataset}}"),
                    per_dataset("slipstream_events_published_total", "published {{dataset}}"),
                    per_dataset("slipstream_events_written_total", "written {{dataset}}"),
                    per_dataset("slipstream_events_duplicate_total", "duplicate {{dataset}}"),
                ],
                unit="ops",
            ),
            Panel(
                "Quarantined, rejected and dead-lettered",
                "Invalid events go to quarantine (never retried); messages the store refuses "
                "for good, or that fail every delivery, go to the dead letters.",
                [
                    target(
                        "sum by (dataset, reason) (rate(slipstream_events_quarantined_total"
                        f"{{{DATASET}}}{RATE}))",
                        "quarantined {{dataset}} {{reason}}",
                    ),
                    per_dataset(
                        "slipstream_events_rejected_total", "rejected at ingest {{dataset}}"
                    ),
                    target(
                        "sum by (dataset, reason) (rate(slipstream_events_dead_lettered_total"
                        f"{{{DATASET}}}{RATE}))",
                        "dead-lettered {{dataset}} {{reason}}",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "Freshness p50 / p99",
                "Broker publish to queryable in the store; the freshness SLO is 10 s.",
                [
                    target(
                        quantile(0.5, "slipstream_freshness_seconds", "dataset"), "p50 {{dataset}}"
                    ),
                    target(
                        quantile(0.99, "slipstream_freshness_seconds", "dataset"), "p99 {{dataset}}"
                    ),
                ],
                unit="s",
            ),
            Panel(
                "Broker backlog",
                "Messages not yet acked. Every process reports the same broker, hence max; "
                "ingest answers 503 past SLIPSTREAM_BACKLOG_LIMIT.",
                [
                    target(
                        f"max by (dataset) (slipstream_broker_backlog{{{DATASET}}})",
                        "{{dataset}}",
                    )
                ],
            ),
            Panel(
                "Batch size",
                "Messages per worker batch: small batches under load mean the worker is starved "
                "or the batch wait is short.",
                [
                    target(quantile(0.5, "slipstream_batch_size", "dataset"), "p50 {{dataset}}"),
                    target(quantile(0.99, "slipstream_batch_size", "dataset"), "p99 {{dataset}}"),
                ],
            ),
            Panel(
                "Store write duration p50 / p99",
                "One batch write; a slow store shows here first, then in freshness and backlog.",
                [
                    target(
                        quantile(0.5, "slipstream_store_write_duration_seconds", "dataset"),
                        "p50 {{dataset}}",
                    ),
                    target(
                        quantile(0.99, "slipstream_store_write_duration_seconds", "dataset"),
                        "p99 {{dataset}}",
                    ),
                ],
                unit="s",
            ),
            Panel(
                "Store errors by class",
                "Transient errors are retried with backoff; terminal ones split the batch and "
                "dead-letter the message at fault.",
                [
                    target(
                        "sum by (dataset, kind) (rate(slipstream_store_errors_total"
                        f"{{{DATASET}}}{RATE}))",
                        "{{dataset}} {{kind}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Worker in-flight batches",
                "Batches leased right now, per process.",
                [
                    target(
                        f"sum by (job, instance) (slipstream_worker_inflight_batches{{{SYSTEM}}})",
                        "{{instance}}",
                    )
                ],
            ),
            Panel(
                "Backends",
                "Last ping of the broker and the store, worst process.",
                [
                    instant(
                        f"min by (component) (slipstream_backend_up{{{SYSTEM}}})", "{{component}}"
                    )
                ],
                kind="stat",
                options={
                    "colorMode": "background",
                    "graphMode": "none",
                    "textMode": "value_and_name",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                },
                defaults={
                    "mappings": UP_MAPPING,
                    "thresholds": thresholds((None, "red"), (1, "green")),
                },
            ),
        ],
    )


def probe_row() -> Row:
    return Row(
        "Synthetic probe",
        [
            Panel(
                "Probe runs by result",
                "`slipstream probe` publishes a marked event, reads it back and compares.",
                [
                    target(
                        "sum by (dataset, result) (rate(slipstream_probe_runs_total"
                        f"{{{DATASET}}}{RATE}))",
                        "{{dataset}} {{result}}",
                    )
                ],
                unit="ops",
                width=8,
            ),
            Panel(
                "Probe round trip p50 / p99",
                "Publish to read back through the public API.",
                [
                    target(
                        quantile(0.5, "slipstream_probe_round_trip_seconds", "dataset"),
                        "p50 {{dataset}}",
                    ),
                    target(
                        quantile(0.99, "slipstream_probe_round_trip_seconds", "dataset"),
                        "p99 {{dataset}}",
                    ),
                ],
                unit="s",
                width=8,
            ),
            Panel(
                "Since the last good probe",
                "Seconds since a probe last read back exactly what it published.",
                [
                    target(
                        "time() - max by (dataset) (slipstream_probe_last_success_timestamp_seconds"
                        f"{{{DATASET}}})",
                        "{{dataset}}",
                    )
                ],
                unit="s",
                width=8,
                defaults={"thresholds": thresholds((None, "green"), (120, "orange"), (300, "red"))},
            ),
        ],
    )


def overview() -> Json:
    return dashboard(
        "slipstream-overview",
        "Slipstream / Overview",
        "One system (or a selection): SLOs, the HTTP API per route, the pipeline per dataset.",
        [slo_row(), http_row(), pipeline_row(), probe_row()],
        system_multi=False,
    )
