output "api_url" {
  description = "Base URL of the API (the deploy workflow smoke-tests it with `slipstream probe`)."
  value       = coalesce(var.api_url, "https://${module.slipstream.alb_dns_name}")
}

output "ecs_services" {
  description = "ECS cluster and service names."
  value       = { cluster = module.slipstream.cluster_name, services = module.slipstream.service_names }
}

output "alb_dns_name" {
  description = "Point the certificate's host name here."
  value       = module.slipstream.alb_dns_name
}

output "topic_arns" {
  description = "SNS topic per dataset."
  value       = module.slipstream.topic_arns
}

output "queue_urls" {
  description = "SQS queue per dataset."
  value       = module.slipstream.queue_urls
}

output "db_endpoint" {
  description = "RDS endpoint."
  value       = module.slipstream.db_endpoint
}

output "api_keys_secret_arn" {
  description = "Put SLIPSTREAM_API_KEYS here before the services start."
  value       = module.slipstream.api_keys_secret_arn
}

output "migrate_run_task_command" {
  description = "Creates the tables; run after the first apply and after dataset changes."
  value       = module.slipstream.migrate_run_task_command
}

output "alarm_topic_arns" {
  description = "Alarm notification topics (page, ticket)."
  value       = module.slipstream.alarm_topic_arns
}

output "slo_alarm_sources" {
  description = "How each SLO is measured in CloudWatch, or none."
  value       = module.slipstream.slo_alarm_sources
}
