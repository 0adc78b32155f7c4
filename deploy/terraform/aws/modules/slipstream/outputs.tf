output "alb_dns_name" {
  description = "DNS name of the load balancer: point the API's host name (the certificate's) at it with a CNAME or an alias record."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the load balancer, for a Route 53 alias record."
  value       = aws_lb.api.zone_id
}

output "broker_url" {
  description = "SLIPSTREAM_BROKER_URL the tasks run with (for `slipstream publish` from elsewhere with a role allowed to publish)."
  value       = "sqs://${var.region}?prefix=${var.name_prefix}"
}

output "topic_arns" {
  description = "SNS topic of each dataset (dataset => ARN); other teams may subscribe their own queues to them."
  value       = { for d, t in aws_sns_topic.dataset : d => t.arn }
}

output "queue_urls" {
  description = "SQS queue of each dataset (dataset => URL)."
  value       = { for d, q in aws_sqs_queue.dataset : d => q.url }
}

output "dead_letter_queue_urls" {
  description = "Dead letter queue of each dataset (dataset => URL)."
  value       = { for d, q in aws_sqs_queue.dlq : d => q.url }
}

output "db_endpoint" {
  description = "Address and port of the RDS PostgreSQL instance (reachable only from the tasks' security group)."
  value       = aws_db_instance.main.endpoint
}

output "db_master_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master user's password in (field \"password\")."
  value       = local.db_secret_arn
}

output "api_keys_secret_arn" {
  description = "Secrets Manager secret holding SLIPSTREAM_API_KEYS; put its value before the first deployment."
  value       = aws_secretsmanager_secret.api_keys.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.main.name
}

output "service_names" {
  description = "ECS service names (api, worker, and probe when probe_url is set)."
  value = merge(
    { api = aws_ecs_service.api.name, worker = aws_ecs_service.worker.name },
    { for s in aws_ecs_service.probe : "probe" => s.name },
  )
}

output "probe_api_key_secret_arn" {
  description = "Secrets Manager secret holding SLIPSTREAM_PROBE_API_KEY (null without a probe)."
  value       = one(aws_secretsmanager_secret.probe_api_key[*].arn)
}

output "migrate_task_definition_arn" {
  description = "Task definition that creates and migrates the tables (`slipstream check` with SLIPSTREAM_CREATE_RESOURCES=true); run it after the first apply and after each dataset change."
  value       = aws_ecs_task_definition.migrate.arn
}

output "migrate_run_task_command" {
  description = "The aws CLI command that runs the migrate task once."
  value = join(" ", [
    "aws ecs run-task --region ${var.region} --cluster ${aws_ecs_cluster.main.name}",
    "--launch-type FARGATE --task-definition ${aws_ecs_task_definition.migrate.arn}",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", var.private_subnet_ids)}],securityGroups=[${aws_security_group.tasks.id}],assignPublicIp=DISABLED}'",
  ])
}

output "task_security_group_id" {
  description = "Security group of the tasks (the one the database admits)."
  value       = aws_security_group.tasks.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the topics, secrets, log groups and database."
  value       = aws_kms_key.main.arn
}

output "alarm_topic_arns" {
  description = "SNS topics alarms notify (page, ticket): subscribe the on-call tool to page, the issue tracker to ticket."
  value       = local.alarm_topic
}

output "slo_alarm_sources" {
  description = "How CloudWatch measures each SLO of the spec (alb, alb-ingest, alb-latency, agent), or none: left to Prometheus."
  value       = local.slo_source
}
