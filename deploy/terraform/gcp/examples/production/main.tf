provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    environment = "production"
    managed_by  = "terraform"
  }
}

locals {
  repo_root = "${path.root}/../../../../.."

  # The same files the service reads: the datasets it serves and the SLO spec its alerts follow.
  datasets_file = coalesce(var.datasets_file, "${local.repo_root}/src/slipstream/datasets/flights.yaml")
  datasets      = yamldecode(file(local.datasets_file)).datasets
  slo_spec      = yamldecode(file("${local.repo_root}/observability/slo/slos.yaml"))
}

module "slipstream" {
  source = "../../modules/slipstream"

  project_id  = var.project_id
  region      = var.region
  name_prefix = var.name_prefix
  image       = var.image

  delivery = var.delivery
  store    = var.store
  datasets = local.datasets
  slo_spec = local.slo_spec

  public_api        = var.public_api
  api_invokers      = var.api_invokers
  producers         = var.producers
  api_min_instances = var.api_min_instances
  api_max_instances = var.api_max_instances
  worker_instances  = var.worker_instances

  bigquery_location = var.bigquery_location
  network           = var.network
  subnetwork        = var.subnetwork

  notification_channels = var.notification_channels

  settings = {
    # BigQuery bills a MERGE at least ~20 MB: fewer, larger writes (docs/backends/bigquery.md).
    SLIPSTREAM_BATCH_WAIT = "5"
    SLIPSTREAM_BATCH_SIZE = "5000"
  }

  labels = {
    environment = "production"
  }
}
