locals {
  db_major = split(".", var.db_engine_version)[0]
}

resource "aws_db_subnet_group" "main" {
  name        = "${var.name_prefix}-db"
  description = "Slipstream PostgreSQL, private subnets"
  subnet_ids  = var.database_subnet_ids
  tags        = local.tags
}

resource "aws_db_parameter_group" "main" {
  name_prefix = "${var.name_prefix}-pg${local.db_major}-"
  family      = "postgres${local.db_major}"
  description = "Slipstream PostgreSQL ${local.db_major}"

  # TLS only: the store URL says sslmode=require, and the server refuses anything else.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statements slower than a second go to the exported postgresql log.
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "main" {
  identifier     = "${var.name_prefix}-db"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.main.arn

  db_name  = var.db_name
  username = var.db_username
  # RDS generates the password, keeps it in Secrets Manager (encrypted with the module's key) and
  # rotates it; Terraform never sees it and it is not in the state.
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.main.arn
  iam_database_authentication_enabled = true

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.main.name

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "03:00-04:00"
  maintenance_window        = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name_prefix}-db-final"

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  performance_insights_enabled          = var.db_performance_insights
  performance_insights_kms_key_id       = var.db_performance_insights ? aws_kms_key.main.arn : null
  performance_insights_retention_period = var.db_performance_insights ? 7 : null

  monitoring_interval = var.db_monitoring_interval
  monitoring_role_arn = var.db_monitoring_interval > 0 ? aws_iam_role.rds_monitoring[0].arn : null

  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]

  tags = local.tags
}
