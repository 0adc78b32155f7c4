# Cloud Monitoring from the SLO spec (observability/slo/slos.yaml, passed in as var.slo_spec):
#   - an uptime check on /healthz, with an alert policy that pages;
#   - one Cloud Monitoring SLO per spec SLO (error budget in the console), request-based, on
#     the Managed Service for Prometheus series the collector sidecar writes;
#   - per SLO, a page and a ticket alert policy whose single PromQL condition is the
#     multi-window burn rate (page: 14.4x over 1h and 5m, or 6x over 6h and 30m; ticket: 3x over
#     1d and 2h, or 1x over 3d and 6h) per the SLO's group_by labels;
#   - the spec's other alerts, PromQL as written there.
# The queries are built in module ../slo-alerts (pure, tested offline).

locals {
  api_host = trimprefix(google_cloud_run_v2_service.api.uri, "https://")
  alert_severity = {
    page   = "CRITICAL"
    ticket = "WARNING"
  }
}

resource "google_monitoring_uptime_check_config" "healthz" {
  project      = var.project_id
  display_name = "${local.prefix} API /healthz"
  timeout      = "10s"
  period       = var.uptime_check_period
  checker_type = "STATIC_IP_CHECKERS"

  http_check {
    path           = "/healthz"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }

    # Without public_api, Cloud Run IAM wants a Google-signed token (the agent has run.invoker).
    dynamic "service_agent_authentication" {
      for_each = var.public_api ? [] : [1]
      content {
        type = "OIDC_TOKEN"
      }
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local.api_host
    }
  }

  user_labels = local.labels
}

resource "google_monitoring_alert_policy" "uptime" {
  project      = var.project_id
  display_name = "${local.prefix} API /healthz failing"
  combiner     = "OR"
  severity     = local.alert_severity.page

  conditions {
    display_name = "/healthz uptime check failing"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.healthz.uptime_check_id}\" AND resource.type=\"uptime_url\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "120s"

      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "The Slipstream API at ${google_cloud_run_v2_service.api.uri} does not answer /healthz from more than one checker location. Check the Cloud Run revisions and their logs."
    mime_type = "text/markdown"
  }

  notification_channels = var.notification_channels.page
  user_labels           = local.labels
}

# --- SLOs -------------------------------------------------------------------------------------

resource "google_monitoring_custom_service" "slipstream" {
  project      = var.project_id
  service_id   = local.prefix
  display_name = "Slipstream (${local.prefix})"
  user_labels  = local.labels
}

resource "google_monitoring_slo" "spec" {
  for_each = module.slo.slos

  project             = var.project_id
  service             = google_monitoring_custom_service.slipstream.service_id
  slo_id              = each.key
  display_name        = each.value.display_name
  goal                = each.value.goal
  rolling_period_days = each.value.rolling_period_days
  user_labels         = local.labels

  request_based_sli {
    dynamic "good_total_ratio" {
      for_each = each.value.type == "ratio" ? [1] : []
      content {
        bad_service_filter   = each.value.bad_filter
        total_service_filter = each.value.total_filter
      }
    }

    # Good = observations at or under the threshold.
    dynamic "distribution_cut" {
      for_each = each.value.type == "latency" ? [1] : []
      content {
        distribution_filter = each.value.total_filter
        range {
          max = each.value.threshold
        }
      }
    }
  }
}

# --- burn-rate alerts ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "burn_rate" {
  for_each = module.slo.burn_rate_policies

  project      = var.project_id
  display_name = "${local.prefix} ${each.value.display_name}"
  combiner     = "OR"
  severity     = lookup(local.alert_severity, each.value.severity, "WARNING")

  conditions {
    display_name = "${each.value.slo} burn rate (${each.value.severity})"
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = "0s" # the short window already keeps one bad scrape from firing
      evaluation_interval = "60s"
      rule_group          = "${local.prefix}-slo-burn-rate"
      alert_rule          = each.value.alert_name
      labels = {
        severity = each.value.severity
        slo      = each.value.slo
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = each.value.documentation
    mime_type = "text/markdown"
  }

  notification_channels = lookup(var.notification_channels, each.value.severity, [])
  user_labels           = merge(local.labels, { slo = each.value.slo, severity = each.value.severity })
}

# --- the spec's other alerts --------------------------------------------------------------------

resource "google_monitoring_alert_policy" "spec_alert" {
  for_each = module.slo.extra_alerts

  project      = var.project_id
  display_name = "${local.prefix} ${each.key}"
  combiner     = "OR"
  severity     = lookup(local.alert_severity, each.value.severity, "WARNING")

  conditions {
    display_name = each.key
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
      rule_group          = "${local.prefix}-alerts"
      alert_rule          = each.key
      labels = {
        severity = each.value.severity
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = each.value.documentation
    mime_type = "text/markdown"
  }

  notification_channels = lookup(var.notification_channels, each.value.severity, [])
  user_labels           = merge(local.labels, { severity = each.value.severity })
}
