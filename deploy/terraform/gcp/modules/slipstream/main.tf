# Names, URLs and the values shared by the files of this module, one file per concern:
# pubsub.tf, run.tf, bigquery.tf, cloudsql.tf, iam.tf, secrets.tf, monitoring.tf, registry.tf.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  prefix   = var.name_prefix
  datasets = { for ds in var.datasets : ds.name => ds }

  push = var.delivery == "push"
  # With push delivery the API service also runs the worker (`slipstream up`): a pushed event
  # goes onto the broker topic, and something must pull it from there into the store.
  api_runs_worker = local.push

  labels = merge(var.labels, { app = "slipstream", deployment = local.prefix })

  # The names the pubsub:// broker expects (docs/backends/pubsub.md): it only checks that they
  # exist, since SLIPSTREAM_CREATE_RESOURCES is false here.
  broker_url = "pubsub://${var.project_id}?prefix=${local.prefix}"
  store_url  = var.store == "bigquery" ? "bigquery://${var.project_id}/${var.bigquery_dataset_id}?location=${var.bigquery_location}" : null

  # Cloud Run checks the OIDC token of a push against the service URL or a custom audience; a
  # fixed custom audience avoids a dependency cycle (the URL exists only after the service).
  push_audience = "https://${local.prefix}.${var.project_id}.push.slipstream"

  # Pub/Sub's own service agent moves messages to dead letter topics and mints push tokens.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  datasets_mount = "/etc/slipstream/datasets"
}

module "datasets" {
  source   = "../datasets"
  datasets = var.datasets
}

module "slo" {
  source = "../slo-alerts"
  spec   = var.slo_spec
}
