# Secret Manager. Terraform makes the secrets but never holds a secret value: versions of
# api-keys and store-url are added out of band (docs/deploy-gcp.md). The datasets file is not
# secret; Secret Manager is only how Cloud Run mounts a file, and Terraform writes that version.

resource "google_secret_manager_secret" "api_keys" {
  project   = var.project_id
  secret_id = "${local.prefix}-api-keys"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "store_url" {
  count = var.store == "postgresql" ? 1 : 0

  project   = var.project_id
  secret_id = "${local.prefix}-store-url"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "datasets" {
  project   = var.project_id
  secret_id = "${local.prefix}-datasets"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "datasets" {
  secret      = google_secret_manager_secret.datasets.id
  secret_data = module.datasets.datasets_file
}
