# Roles of the tasks. Every statement names its resources; the two exceptions AWS imposes are
# marked "AWS requires *" below and listed in docs/deploy-aws.md (IAM).

locals {
  # An image in a private ECR repository of this partition: pull rights on that repository only.
  ecr_match = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.image), null)
  ecr_repository_arn = (local.ecr_match == null ? null
  : "arn:${local.partition}:ecr:${local.ecr_match[1]}:${local.ecr_match[0]}:repository/${local.ecr_match[2]}")

  queue_arns = [for d in var.datasets : aws_sqs_queue.dataset[d].arn]
  dlq_arns   = [for d in var.datasets : aws_sqs_queue.dlq[d].arn]
  topic_arns = [for d in var.datasets : aws_sns_topic.dataset[d].arn]

  log_group_arns = [for g in aws_cloudwatch_log_group.task : "${g.arn}:*"]
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# --- execution role: what ECS itself does to start a task ----------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-task-execution"
  description        = "ECS pulls the Slipstream image, writes its logs and reads its secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  # AWS requires *: GetAuthorizationToken is account-wide and has no resource to name.
  statement {
    sid       = "EcrAuthorizationToken"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [local.ecr_repository_arn]
    content {
      sid       = "EcrPullSlipstreamImage"
      effect    = "Allow"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteTaskLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = local.log_group_arns
  }

  statement {
    sid       = "ReadTaskSecrets"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.task_secret_arns
  }

  statement {
    sid       = "DecryptTaskSecrets"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "slipstream-task-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- what the broker needs in both processes at start and for /readyz -----------------------------
# (docs/backends/sqs.md, "Running it for real": queue and topic checks, subscription check, backlog)

data "aws_iam_policy_document" "broker_common" {
  statement {
    sid       = "QueueChecks"
    effect    = "Allow"
    actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = concat(local.queue_arns, local.dlq_arns)
  }

  statement {
    sid       = "TopicChecks"
    effect    = "Allow"
    actions   = ["sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = local.topic_arns
  }

  # AWS requires *: sns:GetSubscriptionAttributes supports no resource-level permissions. It reads
  # a subscription's settings (the broker checks RawMessageDelivery), nothing more.
  statement {
    sid       = "SubscriptionAttributes"
    effect    = "Allow"
    actions   = ["sns:GetSubscriptionAttributes"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "metrics_agent" {
  statement {
    sid       = "PrometheusMetricsToCloudWatch"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.prometheus.arn}:*"]
  }
}

# --- api task role ---------------------------------------------------------------------------------

resource "aws_iam_role" "api" {
  name               = "${var.name_prefix}-api"
  description        = "Slipstream api: publish to the dataset topics, dead letter listing and replay"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "api" {
  source_policy_documents = concat(
    [data.aws_iam_policy_document.broker_common.json],
    var.cloudwatch_agent_image == null ? [] : [data.aws_iam_policy_document.metrics_agent.json],
  )

  statement {
    sid       = "PublishToDatasetTopics"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = local.topic_arns
  }

  # The topics are encrypted with the module's key: a publisher needs a data key from it.
  statement {
    sid       = "EncryptForTopics"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${var.region}.amazonaws.com"]
    }
  }

  # The admin API lists dead letters (receive, then make visible again) and replays them to the
  # dataset queue, deleting them from the dead letter queue.
  statement {
    sid       = "DeadLetterListAndReplay"
    effect    = "Allow"
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"]
    resources = local.dlq_arns
  }

  statement {
    sid       = "ReplayToDatasetQueues"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = local.queue_arns
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "slipstream-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

# --- worker task role ------------------------------------------------------------------------------

resource "aws_iam_role" "worker" {
  name               = "${var.name_prefix}-worker"
  description        = "Slipstream worker: consume the dataset queues, dead-letter what the store refuses"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "worker" {
  source_policy_documents = concat(
    [data.aws_iam_policy_document.broker_common.json],
    var.cloudwatch_agent_image == null ? [] : [data.aws_iam_policy_document.metrics_agent.json],
  )

  statement {
    sid    = "ConsumeDatasetQueues"
    effect = "Allow"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
    ]
    resources = local.queue_arns
  }

  # A message the store refuses for good is sent to the dead letter queue with its reason.
  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = local.dlq_arns
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "slipstream-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# --- probe task role: no AWS access of its own, only the metrics sidecar's --------------------------

resource "aws_iam_role" "probe" {
  count = local.probe_enabled ? 1 : 0

  name               = "${var.name_prefix}-probe"
  description        = "Slipstream probe: calls the API over HTTPS; AWS access only for its metrics sidecar"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "probe_metrics" {
  count = local.probe_enabled && local.agent_enabled ? 1 : 0

  name   = "slipstream-probe-metrics"
  role   = aws_iam_role.probe[0].id
  policy = data.aws_iam_policy_document.metrics_agent.json
}

# --- RDS enhanced monitoring -------------------------------------------------------------------------

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    sid     = "RdsMonitoringAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count = var.db_monitoring_interval > 0 ? 1 : 0

  name               = "${var.name_prefix}-rds-monitoring"
  description        = "RDS enhanced monitoring of the Slipstream database"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count = var.db_monitoring_interval > 0 ? 1 : 0

  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
