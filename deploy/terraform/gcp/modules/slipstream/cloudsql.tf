# store = postgresql: a Cloud SQL instance reachable on a private IP only. The database user and
# its password are made out of band (no password in Terraform state); the whole
# postgresql:// URL then goes into the store-url secret (see docs/deploy-gcp.md).

resource "google_sql_database_instance" "postgres" {
  count = var.store == "postgresql" ? 1 : 0

  project             = var.project_id
  region              = var.region
  name                = "${local.prefix}-pg"
  database_version    = var.postgres_version
  deletion_protection = var.deletion_protection
  encryption_key_name = var.kms_key_name

  settings {
    tier                        = var.postgres_tier
    availability_type           = "REGIONAL"
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled    = false # no public IP at all
      private_network = var.network
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7 # Sunday
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
  }

  lifecycle {
    precondition {
      condition     = var.network != null && var.subnetwork != null
      error_message = "store = postgresql needs network (with private services access) and subnetwork: the instance has no public IP."
    }
  }
}

resource "google_sql_database" "slipstream" {
  count = var.store == "postgresql" ? 1 : 0

  project  = var.project_id
  instance = google_sql_database_instance.postgres[0].name
  name     = "slipstream"
}
