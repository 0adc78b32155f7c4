# store = bigquery: one dataset, and per Slipstream dataset an events table and a quarantine
# table, defined as the BigQuery store would define them (module ../datasets mirrors
# src/slipstream/stores/bigquery_schema.py; a test compares the two).

locals {
  bigquery_tables = var.store == "bigquery" ? module.datasets.tables : {}
}

resource "google_bigquery_dataset" "this" {
  count = var.store == "bigquery" ? 1 : 0

  project       = var.project_id
  dataset_id    = var.bigquery_dataset_id
  location      = var.bigquery_location
  friendly_name = "Slipstream (${local.prefix})"
  description   = "Events stored by Slipstream deployment ${local.prefix}; the tables follow the datasets file."
  labels        = local.labels

  # Tables hold the only copy of the events: never drop them with the dataset.
  delete_contents_on_destroy = false

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "events" {
  for_each = local.bigquery_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this[0].dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = var.deletion_protection
  labels              = merge(local.labels, { dataset = each.key })
  schema              = jsonencode(each.value.columns)

  # DAY partitions on the event time: every windowed read, the cursor, retention and the write's
  # MERGE filter on it. Days, not hours: hours would reach the 10,000-partition limit in 14 months.
  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_field
    expiration_ms = var.bigquery_partition_expiration ? each.value.partition_expiration_ms : null
  }

  clustering = each.value.clustering

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "quarantine" {
  for_each = local.bigquery_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this[0].dataset_id
  table_id            = each.value.quarantine_table
  description         = each.value.quarantine_description
  deletion_protection = var.deletion_protection
  labels              = merge(local.labels, { dataset = each.key })
  schema              = jsonencode(each.value.quarantine_columns)
  clustering          = each.value.quarantine_clustering

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}
