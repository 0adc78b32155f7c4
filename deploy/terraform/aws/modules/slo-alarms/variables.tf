variable "slo_spec" {
  description = "The SLO spec, decoded (observability/slo/slos.yaml)."
  type        = any
}

variable "datasets" {
  description = "Dataset names; SLOs grouped by dataset get alarms per dataset."
  type        = list(string)
}

variable "name_prefix" {
  description = "Prefix of the alarm names."
  type        = string
}

variable "agent_enabled" {
  description = "Whether the CloudWatch agent publishes the scraped Prometheus metrics; without it only the ALB-measured SLOs get alarms."
  type        = bool
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the scraped Prometheus metrics."
  type        = string
}

variable "load_balancer" {
  description = "The ALB's CloudWatch dimension value (its arn_suffix)."
  type        = string
}

variable "ingest_target_group" {
  description = "The ingest target group's CloudWatch dimension value (its arn_suffix)."
  type        = string
}

variable "read_target_group" {
  description = "The read target group's CloudWatch dimension value (its arn_suffix)."
  type        = string
}
