output "burn_rate_policies" {
  description = "Per \"<slo>-<severity>\": the PromQL query, severity, display name and documentation of a burn-rate alert policy."
  value       = local.burn_rate_policies
}

output "extra_alerts" {
  description = "Per alert name: the spec's own PromQL alerts, with duration in seconds and documentation."
  value       = local.extra_alerts
}

output "slos" {
  description = "Per SLO name: goal, rolling period and the Monitoring filters of a request-based SLI."
  value       = local.slos
}

output "slo_names" {
  description = "The SLO names of the spec."
  value       = [for s in var.spec.slos : s.name]
}
