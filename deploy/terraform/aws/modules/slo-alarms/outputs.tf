output "slo_source" {
  description = "SLO name => how CloudWatch measures it: alb, alb-ingest, alb-latency, agent, or none (Prometheus only)."
  value       = local.slo_source
}

output "burn_rules" {
  description = "Burn-rate rules: severity, factor, long and short window in seconds."
  value       = local.burn_rules
}

output "burn_alarms" {
  description = "One metric alarm per SLO scope, rule and window: the series, the window and the threshold on the error ratio."
  value       = local.burn_alarms
}

output "burn_composites" {
  description = "One composite alarm per SLO scope and rule: the long and short window alarms it ANDs and its severity."
  value       = local.burn_composites
}

output "latency_alarms" {
  description = "Percentile alarms on the read target group's TargetResponseTime, per latency SLO and window."
  value       = local.latency_alarms
}

output "agent_metric_declarations" {
  description = "metric_declaration entries of the CloudWatch agent's EMF processor: the scraped series the alarms read."
  value       = local.agent_metric_declarations
}

output "window_labels" {
  description = "Window length in seconds (as a string) => short label used in alarm names."
  value       = local.window_labels
}

output "read_dims" {
  description = "CloudWatch dimensions of the read target group."
  value       = local.read_dims
}
