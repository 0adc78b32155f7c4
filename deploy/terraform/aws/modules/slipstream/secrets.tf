# Secrets the tasks receive as environment variables, read by ECS at task start with the
# execution role. Their values never pass through Terraform (nor its state).
#
# - SLIPSTREAM_API_KEYS: this secret; its value (KEY:SCOPES,...) is put out of band, see
#   docs/deploy-aws.md. Without a value the tasks cannot start, which is the safe failure: an
#   empty value would run the API open.
# - PGPASSWORD: the "password" field of the secret RDS manages for the master user. The store URL
#   carries no password; libpq, under psycopg, reads it from PGPASSWORD. After RDS rotates it, new
#   tasks get the new one (force a new deployment of both services; the ones running keep their
#   open connections until then).

resource "aws_secretsmanager_secret" "api_keys" {
  name        = "${var.name_prefix}/api-keys"
  description = "SLIPSTREAM_API_KEYS of the Slipstream api (KEY:SCOPE[+SCOPE],...); set out of band"
  kms_key_id  = aws_kms_key.main.arn
  # A deleted secret can be restored for a week.
  recovery_window_in_days = 7
  tags                    = local.tags
}

# The probe's key (read+ingest scopes; list it in SLIPSTREAM_API_KEYS too), set out of band.
resource "aws_secretsmanager_secret" "probe_api_key" {
  count = local.probe_enabled ? 1 : 0

  name                    = "${var.name_prefix}/probe-api-key"
  description             = "SLIPSTREAM_PROBE_API_KEY of the Slipstream probe; set out of band"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

locals {
  probe_enabled = var.probe_url != null
  db_secret_arn = aws_db_instance.main.master_user_secret[0].secret_arn

  container_secrets = [
    { name = "SLIPSTREAM_API_KEYS", valueFrom = aws_secretsmanager_secret.api_keys.arn },
    { name = "PGPASSWORD", valueFrom = "${local.db_secret_arn}:password::" },
  ]
  task_secret_arns = concat(
    [aws_secretsmanager_secret.api_keys.arn, local.db_secret_arn],
    aws_secretsmanager_secret.probe_api_key[*].arn,
  )
}
