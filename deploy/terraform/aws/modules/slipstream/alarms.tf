# CloudWatch alarms made from the SLO spec (observability/slo/slos.yaml, passed in decoded as
# var.slo_spec): the same objectives the Prometheus rules are generated from. docs/deploy-aws.md
# ("Alarms") tables what each SLO maps to and what CloudWatch cannot measure.
#
# The plan (which SLO is measured how, which alarms) is computed by ../slo-alarms from the spec.
#
# Burn-rate alarms follow the multi-window scheme of the Prometheus rules: an alert fires when
# the error budget burns faster than FACTOR over a long window AND over a short one (the short
# window makes it stop soon after the burn does). Each window is one CloudWatch alarm whose
# period is the window (CloudWatch re-evaluates it every minute); a composite alarm ANDs the two
# and is the only one that notifies.

module "slo_alarms" {
  source = "../slo-alarms"

  slo_spec            = var.slo_spec
  datasets            = var.datasets
  name_prefix         = var.name_prefix
  agent_enabled       = local.agent_enabled
  metrics_namespace   = var.prometheus_metrics_namespace
  load_balancer       = aws_lb.api.arn_suffix
  ingest_target_group = aws_lb_target_group.api["ingest"].arn_suffix
  read_target_group   = aws_lb_target_group.api["read"].arn_suffix
}

locals {
  slos                      = { for s in var.slo_spec.slos : s.name => s }
  slo_source                = module.slo_alarms.slo_source
  burn_alarms               = module.slo_alarms.burn_alarms
  burn_composites           = module.slo_alarms.burn_composites
  latency_alarms            = module.slo_alarms.latency_alarms
  agent_metric_declarations = module.slo_alarms.agent_metric_declarations
  window_labels             = module.slo_alarms.window_labels
  read_dims                 = module.slo_alarms.read_dims
  alarm_topic               = { for k, t in aws_sns_topic.alarms : k => t.arn }
}

# --- where alarms go -----------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  for_each = toset(["page", "ticket"])

  name              = "${var.name_prefix}-alarms-${each.key}"
  kms_master_key_id = aws_kms_key.main.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = { for pair in setproduct(["page", "ticket"], var.alarm_emails) : "${pair[0]}/${pair[1]}" => pair }

  topic_arn = aws_sns_topic.alarms[each.value[0]].arn
  protocol  = "email"
  endpoint  = each.value[1]
}

# --- SLO burn rates --------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "burn" {
  for_each = local.burn_alarms

  alarm_name          = each.value.name
  alarm_description   = "SLO ${each.value.slo} (${each.value.scope}): error ratio over ${local.window_labels[tostring(each.value.window)]} above ${format("%.4g", each.value.threshold)} (${each.value.rule}). Notifies through its composite alarm."
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "ratio"
    label       = "${each.value.slo} error ratio"
    return_data = true
    expression = (each.value.mode == "bad"
      ? "IF(total > 0, (${join(" + ", [for i, _ in each.value.parts : "FILL(p${i}, 0)"])}) / total, 0)"
      : "IF(total > 0, 1 - (${join(" + ", [for i, _ in each.value.parts : "FILL(p${i}, 0)"])}) / total, 0)"
    )
  }

  dynamic "metric_query" {
    for_each = each.value.parts
    content {
      id = "p${metric_query.key}"
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric
        dimensions  = metric_query.value.dims
        period      = each.value.window
        stat        = "Sum"
      }
    }
  }

  metric_query {
    id = "total"
    metric {
      namespace   = each.value.total.namespace
      metric_name = each.value.total.metric
      dimensions  = each.value.total.dims
      period      = each.value.window
      stat        = "Sum"
    }
  }

  tags = merge(local.tags, { "slipstream:slo" = each.value.slo })
}

resource "aws_cloudwatch_composite_alarm" "burn" {
  for_each = local.burn_composites

  alarm_name        = "${var.name_prefix}-slo-${each.value.slo}-${each.value.scope}-${each.value.rule}"
  alarm_description = "SLO ${each.value.slo} (${each.value.scope}) burns its error budget ${each.value.factor}x too fast over both windows. Runbook: ${try(var.slo_spec.runbook_base_url, "")}/${each.value.slo}.md"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.burn[each.value.long].alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.burn[each.value.short].alarm_name}\")"
  alarm_actions     = [local.alarm_topic[each.value.severity]]
  ok_actions        = [local.alarm_topic[each.value.severity]]
  tags              = merge(local.tags, { "slipstream:slo" = each.value.slo, "slipstream:severity" = each.value.severity })
}

# --- SLO latency from the load balancer --------------------------------------------------------------
# The ALB gives percentiles, not counts under a threshold: the p<objective> of TargetResponseTime
# above the SLO threshold means more than the allowed share of reads were slow in that window.
# Over both 1 h and 5 min it opens a ticket (a burn of at least 1x); exact burn rates of latency
# SLOs come from the Prometheus histograms.

resource "aws_cloudwatch_metric_alarm" "latency" {
  for_each = local.latency_alarms

  alarm_name          = "${var.name_prefix}-slo-${each.value.slo}-${each.value.statistic}-${local.window_labels[tostring(each.value.window)]}"
  alarm_description   = "SLO ${each.value.slo}: ${each.value.statistic} of read TargetResponseTime over ${local.window_labels[tostring(each.value.window)]} above ${each.value.threshold} s. Notifies through its composite alarm."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.read_dims
  extended_statistic  = each.value.statistic
  period              = each.value.window
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  tags                = merge(local.tags, { "slipstream:slo" = each.value.slo })
}

resource "aws_cloudwatch_composite_alarm" "latency" {
  for_each = { for name, source in local.slo_source : name => local.slos[name] if source == "alb-latency" }

  alarm_name        = "${var.name_prefix}-slo-${each.key}"
  alarm_description = "SLO ${each.key}: reads slower than ${each.value.sli.threshold} s for more than ${format("%.4g", 100 - each.value.objective)}% of requests over 1 h and 5 min. Runbook: ${try(var.slo_spec.runbook_base_url, "")}/${each.key}.md"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.latency["${each.key}/3600"].alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.latency["${each.key}/300"].alarm_name}\")"
  alarm_actions     = [local.alarm_topic["ticket"]]
  ok_actions        = [local.alarm_topic["ticket"]]
  tags              = merge(local.tags, { "slipstream:slo" = each.key, "slipstream:severity" = "ticket" })
}

# --- the pipeline itself ---------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each = local.datasets

  alarm_name          = "${var.name_prefix}-${each.key}-dead-letters"
  alarm_description   = "Dataset ${each.key}: messages in the dead letter queue ${local.dlq_names[each.key]} (GET /v1/datasets/${each.key}/deadletter lists them)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = local.dlq_names[each.key] }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic["ticket"]]
  ok_actions          = [local.alarm_topic["ticket"]]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "backlog_age" {
  for_each = local.datasets

  alarm_name          = "${var.name_prefix}-${each.key}-backlog-age"
  alarm_description   = "Dataset ${each.key}: the oldest message in ${local.queue_names[each.key]} waited over ${var.backlog_age_alarm_seconds} s; the worker is stopped or falling behind (freshness)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = local.queue_names[each.key] }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.backlog_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic["page"]]
  ok_actions          = [local.alarm_topic["page"]]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "sns_delivery_failed" {
  for_each = local.datasets

  alarm_name          = "${var.name_prefix}-${each.key}-sns-delivery-failed"
  alarm_description   = "Dataset ${each.key}: SNS failed to deliver to the queue (a queue policy that lost its statement, or a deleted queue)."
  namespace           = "AWS/SNS"
  metric_name         = "NumberOfNotificationsFailed"
  dimensions          = { TopicName = local.topic_names[each.key] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic["ticket"]]
  ok_actions          = [local.alarm_topic["ticket"]]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_api" {
  for_each = aws_lb_target_group.api

  alarm_name          = "${var.name_prefix}-api-${each.key}-no-healthy-task"
  alarm_description   = "No api task passes /readyz in target group ${each.value.name}: the API answers 503 (broker or store unreachable, or no task running)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.api.arn_suffix, TargetGroup = each.value.arn_suffix }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = [local.alarm_topic["page"]]
  ok_actions          = [local.alarm_topic["page"]]
  tags                = local.tags
}

# SlipstreamBrokerDown and SlipstreamStoreDown of the spec's alerts, from the scraped gauge.
resource "aws_cloudwatch_metric_alarm" "backend_down" {
  for_each = local.agent_enabled ? toset(["broker", "store"]) : toset([])

  alarm_name          = "${var.name_prefix}-${each.key}-down"
  alarm_description   = "slipstream_backend_up{component=\"${each.key}\"} is 0 in some task for 2 minutes: the ${each.key} is unreachable."
  namespace           = var.prometheus_metrics_namespace
  metric_name         = "slipstream_backend_up"
  dimensions          = { component = each.key }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic["page"]]
  ok_actions          = [local.alarm_topic["page"]]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "db_cpu" {
  alarm_name          = "${var.name_prefix}-db-cpu"
  alarm_description   = "RDS ${aws_db_instance.main.identifier}: CPU above 80% for 15 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.main.identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  treat_missing_data  = "missing"
  alarm_actions       = [local.alarm_topic["ticket"]]
  ok_actions          = [local.alarm_topic["ticket"]]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "db_free_storage" {
  alarm_name          = "${var.name_prefix}-db-free-storage"
  alarm_description   = "RDS ${aws_db_instance.main.identifier}: less than ${var.db_free_storage_alarm_gib} GiB free (storage autoscaling stops at ${var.db_max_allocated_storage} GiB)."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.main.identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = var.db_free_storage_alarm_gib * 1073741824
  treat_missing_data  = "missing"
  alarm_actions       = [local.alarm_topic["ticket"]]
  ok_actions          = [local.alarm_topic["ticket"]]
  tags                = local.tags
}

# --- Amazon Managed Service for Prometheus (optional) ----------------------------------------------
# The rules generated from the same spec, for every SLO including those CloudWatch cannot measure.

resource "aws_prometheus_rule_group_namespace" "slo" {
  for_each = var.prometheus_workspace_id == null ? {} : var.prometheus_rules

  name         = "${var.name_prefix}-${trimsuffix(trimsuffix(basename(each.key), ".yaml"), ".yml")}"
  workspace_id = var.prometheus_workspace_id
  data         = each.value
}
