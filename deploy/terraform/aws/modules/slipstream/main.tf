data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  datasets  = toset(var.datasets)

  # What the broker derives from the same prefix: queue P-D, dead letter queue P-D-dlq, topic P-D.
  queue_names = { for d in var.datasets : d => "${var.name_prefix}-${d}" }
  dlq_names   = { for d in var.datasets : d => "${var.name_prefix}-${d}-dlq" }
  topic_names = { for d in var.datasets : d => "${var.name_prefix}-${d}" }

  # SQS's most; the dataset queues keep messages for less (see queue_retention_seconds).
  dlq_retention_seconds = 1209600

  tags = merge({ "app" = "slipstream", "slipstream:prefix" = var.name_prefix }, var.tags)
}

# One customer managed key for what this module encrypts at rest besides the queues (SNS topics,
# secrets, log groups, RDS storage and Performance Insights): one key policy to review, and the
# tasks' roles get kms:Decrypt on exactly one ARN. The queues use SQS-managed encryption, which
# SNS delivers to without any key policy (a customer key there would need one for sns.amazonaws.com).
resource "aws_kms_key" "main" {
  description             = "Slipstream ${var.name_prefix}: topics, secrets, logs, database"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.main.key_id
}

# In a key policy the resource "*" means "this key": it is the only form AWS accepts there.
data "aws_iam_policy_document" "kms" {
  statement {
    sid    = "KeyAdministration"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
    # The account's IAM policies decide who does what with the key; listed rather than kms:*
    # so that no statement grants every action.
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListGrants",
      "kms:ListKeyPolicies",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]
  }

  # CloudWatch publishes alarm notifications to the encrypted alarm topics.
  statement {
    sid    = "CloudWatchAlarmsUseKey"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }

  # CloudWatch Logs encrypts this module's log groups, and only those.
  statement {
    sid    = "CloudWatchLogsUseKey"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/slipstream/${var.name_prefix}/*"]
    }
  }
}
