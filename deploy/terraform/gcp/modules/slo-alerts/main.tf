# The SLO spec (observability/slo/slos.yaml) as Cloud Monitoring objects: PromQL burn-rate
# queries for alert policies (Managed Service for Prometheus) and Monitoring filters for SLOs.
# Pure expressions: the tests evaluate this module offline.

locals {
  seconds = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

  # PromQL string literals: backslashes and double quotes escaped.
  promql_label_matchers = {
    for s in var.spec.slos : s.name => {
      all = [for k, v in s.sli.selector : "${k}=~\"${replace(replace(v, "\\", "\\\\"), "\"", "\\\"")}\""]
      bad = [for k, v in merge(s.sli.selector, s.sli.bad) : "${k}=~\"${replace(replace(v, "\\", "\\\\"), "\"", "\\\"")}\""]
    }
  }

  # Selectors in braces, or nothing when there is no matcher at all.
  promql_matchers = {
    for s in var.spec.slos : s.name => {
      all    = length(local.promql_label_matchers[s.name].all) == 0 ? "" : "{${join(",", local.promql_label_matchers[s.name].all)}}"
      bad    = length(local.promql_label_matchers[s.name].bad) == 0 ? "" : "{${join(",", local.promql_label_matchers[s.name].bad)}}"
      bucket = "{${join(",", concat(local.promql_label_matchers[s.name].all, [local.promql_le[s.name]]))}}"
      by     = length(s.group_by) == 0 ? "sum" : "sum by (${join(", ", s.group_by)})"
    }
  }

  promql_le = {
    for s in var.spec.slos : s.name => (
      # The client library writes an integral bucket bound as "10.0"; a regex takes both spellings.
      s.sli.threshold == null ? "" : (
        floor(s.sli.threshold) == s.sli.threshold
        ? "le=~\"${floor(s.sli.threshold)}(\\\\.0)?\""
        : "le=~\"${replace(tostring(s.sli.threshold), ".", "\\\\.")}\""
      )
    )
  }

  # The fraction of bad events over a window, per group_by labels; WINDOW is replaced per use.
  error_ratio = {
    for s in var.spec.slos : s.name => (
      s.sli.type == "ratio"
      ? "(${local.promql_matchers[s.name].by} (rate(${s.sli.metric}${local.promql_matchers[s.name].bad}[WINDOW])) / ${local.promql_matchers[s.name].by} (rate(${s.sli.metric}${local.promql_matchers[s.name].all}[WINDOW])))"
      : "(1 - ${local.promql_matchers[s.name].by} (rate(${s.sli.metric}_bucket${local.promql_matchers[s.name].bucket}[WINDOW])) / ${local.promql_matchers[s.name].by} (rate(${s.sli.metric}_count${local.promql_matchers[s.name].all}[WINDOW])))"
    )
  }

  budget = { for s in var.spec.slos : s.name => (100 - s.objective) / 100 }

  # The alert names the Prometheus rules use (src/slipstream/slo/spec.py, Slo.alert_names):
  # api-availability -> SlipstreamApiAvailabilityFastBurn (page) / ...SlowBurn (ticket); the
  # runbooks in docs/runbooks are named after them.
  burn_suffix = { page = "FastBurn", ticket = "SlowBurn" }
  camel       = { for s in var.spec.slos : s.name => join("", [for part in split("-", s.name) : title(part)]) }
  runbook     = trimsuffix(var.spec.runbook_base_url, "/")

  burn_rate_policies = merge([
    for s in var.spec.slos : {
      for severity, windows in var.burn_rate_windows : "${s.name}-${severity}" => {
        slo        = s.name
        severity   = severity
        alert_name = "Slipstream${local.camel[s.name]}${lookup(local.burn_suffix, severity, title(severity))}"
        objective  = s.objective
        windows    = windows
        # One condition per policy: the windows are OR'ed inside the query, and each one needs
        # both its long and its short window over the threshold (the short one makes the alert
        # stop soon after the burn stops).
        query = join(" or ", [
          for w in windows : format(
            "(%s > %s and %s > %s)",
            replace(local.error_ratio[s.name], "WINDOW", w.long),
            format("%.6g", w.factor * local.budget[s.name]),
            replace(local.error_ratio[s.name], "WINDOW", w.short),
            format("%.6g", w.factor * local.budget[s.name]),
          )
        ])
        display_name = "Slipstream${local.camel[s.name]}${lookup(local.burn_suffix, severity, title(severity))}: ${s.name} error budget burn (${severity})"
        documentation = join("\n\n", compact([
          "**${s.name}** (objective ${s.objective}% over ${var.spec.period}): ${s.description}",
          "The error budget is burning faster than allowed: ${join("; ", [for w in windows : "${w.factor}x over ${w.long} and ${w.short}"])}.",
          s.why,
          local.runbook == "" ? "" : "Runbook: ${local.runbook}/Slipstream${local.camel[s.name]}${lookup(local.burn_suffix, severity, title(severity))}.md",
        ]))
      }
    }
  ]...)

  # Alerts of the spec that are not burn rates, taken as they are.
  extra_alerts = {
    for a in var.spec.alerts : a.name => {
      severity = lookup(a, "severity", "ticket")
      query    = trimspace(a.expr)
      duration = "${tonumber(regex("^([0-9]+)", lookup(a, "for", "0s"))[0]) * local.seconds[regex("([smhdw])$", lookup(a, "for", "0s"))[0]]}s"
      # Prometheus' {{ $labels.x }} becomes Cloud Monitoring's documentation variable.
      documentation = replace(
        join("\n\n", compact([
          lookup(a, "summary", a.name),
          lookup(a, "description", ""),
          local.runbook == "" ? "" : "Runbook: ${local.runbook}/${a.name}.md",
        ])),
        "/\\{\\{ *\\$labels\\.([A-Za-z_][A-Za-z0-9_]*) *\\}\\}/",
        "$${metric.label.$1}",
      )
    }
  }

  # Cloud Monitoring SLOs read the same series through their Managed Service for Prometheus
  # metric types; selectors become regex label filters.
  monitoring_filters = {
    for s in var.spec.slos : s.name => {
      metric_type = s.sli.type == "ratio" ? "prometheus.googleapis.com/${s.sli.metric}/counter" : "prometheus.googleapis.com/${s.sli.metric}/histogram"
      all = join(" ", concat(
        ["metric.type=\"prometheus.googleapis.com/${s.sli.metric}/${s.sli.type == "ratio" ? "counter" : "histogram"}\"", "resource.type=\"prometheus_target\""],
        [for k, v in s.sli.selector : "metric.labels.${k}=monitoring.regex.full_match(\"${replace(replace(v, "\\", "\\\\"), "\"", "\\\"")}\")"],
      ))
      bad = join(" ", concat(
        ["metric.type=\"prometheus.googleapis.com/${s.sli.metric}/${s.sli.type == "ratio" ? "counter" : "histogram"}\"", "resource.type=\"prometheus_target\""],
        [for k, v in merge(s.sli.selector, s.sli.bad) : "metric.labels.${k}=monitoring.regex.full_match(\"${replace(replace(v, "\\", "\\\\"), "\"", "\\\"")}\")"],
      ))
    }
  }

  slos = {
    for s in var.spec.slos : s.name => {
      display_name        = "${var.spec.service} ${s.name}: ${s.description}"
      goal                = s.objective / 100
      rolling_period_days = tonumber(trimsuffix(var.spec.period, "d"))
      type                = s.sli.type
      total_filter        = local.monitoring_filters[s.name].all
      bad_filter          = local.monitoring_filters[s.name].bad
      threshold           = s.sli.threshold
    }
  }
}
