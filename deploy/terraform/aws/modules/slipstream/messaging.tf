# The SNS -> SQS layout of the sqs:// broker (docs/backends/sqs.md), one set per dataset. The
# tasks run with SLIPSTREAM_CREATE_RESOURCES=false, so the broker checks what is here at start and
# fails naming anything missing: a queue without its redrive policy, a subscription without raw
# delivery. Names, maxReceiveCount and the visibility timeout follow the same variables the tasks
# get (name_prefix, max_deliveries, lease_seconds).

resource "aws_sns_topic" "dataset" {
  for_each = local.datasets

  name              = local.topic_names[each.key]
  kms_master_key_id = aws_kms_key.main.arn
  tags              = merge(local.tags, { "slipstream:dataset" = each.key })
}

resource "aws_sqs_queue" "dlq" {
  for_each = local.datasets

  name                      = local.dlq_names[each.key]
  message_retention_seconds = local.dlq_retention_seconds
  # How long a dead letter listing or replay hides a letter (the broker's own setting).
  visibility_timeout_seconds = 30
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  tags                       = merge(local.tags, { "slipstream:dataset" = each.key })
}

resource "aws_sqs_queue" "dataset" {
  for_each = local.datasets

  name                       = local.queue_names[each.key]
  visibility_timeout_seconds = var.lease_seconds
  message_retention_seconds  = var.queue_retention_seconds
  # Long polling: an empty receive waits up to 20 s instead of answering at once (fewer, cheaper calls).
  receive_wait_time_seconds = 20
  sqs_managed_sse_enabled   = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.max_deliveries
  })
  tags = merge(local.tags, { "slipstream:dataset" = each.key })
}

# Only the dataset's own queue may move messages into its dead letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.datasets

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.dataset[each.key].arn]
  })
}

# SNS may send to the queue only on behalf of the dataset's topic (the statement the broker
# itself would write, same Sid).
data "aws_iam_policy_document" "queue" {
  for_each = local.datasets

  statement {
    sid    = "slipstream-topic-sends"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dataset[each.key].arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.dataset[each.key].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dataset" {
  for_each = local.datasets

  queue_url = aws_sqs_queue.dataset[each.key].id
  policy    = data.aws_iam_policy_document.queue[each.key].json
}

resource "aws_sns_topic_subscription" "dataset" {
  for_each = local.datasets

  topic_arn = aws_sns_topic.dataset[each.key].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.dataset[each.key].arn
  # The worker reads the event itself and its message attributes, not SNS's JSON envelope; the
  # broker refuses to start on a subscription without it.
  raw_message_delivery = true

  # A message SNS accepted must not be lost while the queue policy is being written.
  depends_on = [aws_sqs_queue_policy.dataset]
}
