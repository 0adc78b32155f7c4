# Cloud Run: the API (always) and the worker (delivery = pull). Both read the same settings;
# secrets come from Secret Manager, never from plain environment values.

locals {
  common_env = merge(
    var.settings,
    {
      SLIPSTREAM_HOST             = "0.0.0.0"
      SLIPSTREAM_PORT             = "8080"
      SLIPSTREAM_BROKER_URL       = local.broker_url
      SLIPSTREAM_CREATE_RESOURCES = "false" # Terraform owns topics, subscriptions and tables
      SLIPSTREAM_DATASETS         = "${local.datasets_mount}/datasets.yaml"
      SLIPSTREAM_LEASE_SECONDS    = tostring(var.lease_seconds)
      SLIPSTREAM_MAX_DELIVERIES   = tostring(var.max_deliveries)
    },
    var.store == "bigquery" ? { SLIPSTREAM_STORE_URL = local.store_url } : {},
  )

  api_env = merge(
    local.common_env,
    local.push ? {
      SLIPSTREAM_PUBSUB_PUSH_AUDIENCE        = local.push_audience
      SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT = google_service_account.pusher[0].email
    } : {},
  )

  # Environment variable -> Secret Manager secret id; the version is always "latest", so
  # rotating a key is adding a version and rolling a new revision.
  api_secret_env = merge(
    { SLIPSTREAM_API_KEYS = google_secret_manager_secret.api_keys.secret_id },
    var.store == "postgresql" ? { SLIPSTREAM_STORE_URL = google_secret_manager_secret.store_url[0].secret_id } : {},
  )
  worker_secret_env = var.store == "postgresql" ? { SLIPSTREAM_STORE_URL = google_secret_manager_secret.store_url[0].secret_id } : {}

  sidecars = var.prometheus_sidecar_image == null ? [] : [var.prometheus_sidecar_image]
}

resource "google_cloud_run_v2_service" "api" {
  project             = var.project_id
  location            = var.region
  name                = "${local.prefix}-api"
  ingress             = var.api_ingress
  deletion_protection = var.deletion_protection
  custom_audiences    = [local.push_audience]
  labels              = local.labels

  template {
    service_account                  = google_service_account.api.email
    max_instance_request_concurrency = var.api_concurrency
    timeout                          = "300s"
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = local.labels

    scaling {
      # The in-process worker of push delivery must keep running without requests.
      min_instance_count = local.api_runs_worker ? max(1, var.api_min_instances) : var.api_min_instances
      max_instance_count = var.api_max_instances
    }

    dynamic "vpc_access" {
      for_each = var.store == "postgresql" ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = var.subnetwork
        }
      }
    }

    containers {
      name  = "slipstream"
      image = var.image
      # push: API and worker in one process (nothing else pulls what the pushes publish).
      args = local.api_runs_worker ? ["up"] : ["api"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.api_cpu
          memory = var.api_memory
        }
        # A worker, or the metrics collector, needs CPU between requests.
        cpu_idle          = !(local.api_runs_worker || length(local.sidecars) > 0)
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.api_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.api_secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "datasets"
        mount_path = local.datasets_mount
      }

      # Traffic only once broker and store answer.
      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/readyz"
          port = 8080
        }
      }

      # Restart only a process that no longer answers: a store outage is not cured by a restart,
      # so liveness is /healthz, not /readyz.
      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }

    dynamic "containers" {
      for_each = local.sidecars
      content {
        name       = "prometheus-collector"
        image      = containers.value
        depends_on = ["slipstream"]
        resources {
          limits = {
            cpu    = "500m"
            memory = "256Mi"
          }
        }
      }
    }

    volumes {
      name = "datasets"
      secret {
        secret = google_secret_manager_secret.datasets.secret_id
        items {
          # Pinned: a changed datasets file makes a new revision.
          version = google_secret_manager_secret_version.datasets.version
          path    = "datasets.yaml"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    google_secret_manager_secret_iam_member.api,
    google_pubsub_subscription.broker,
    google_pubsub_subscription.dead_letter,
    google_bigquery_table.events,
    google_bigquery_table.quarantine,
  ]
}

resource "google_cloud_run_v2_service" "worker" {
  count = local.push ? 0 : 1

  project             = var.project_id
  location            = var.region
  name                = "${local.prefix}-worker"
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY" # serves only its metrics
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account       = google_service_account.worker[0].email
    execution_environment = "EXECUTION_ENVIRONMENT_GEN2"
    labels                = local.labels

    # A fixed number of pullers: no request ever arrives to scale on.
    scaling {
      min_instance_count = var.worker_instances
      max_instance_count = var.worker_instances
    }

    dynamic "vpc_access" {
      for_each = var.store == "postgresql" ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = var.subnetwork
        }
      }
    }

    containers {
      name  = "slipstream"
      image = var.image
      # Metrics on 8080, where Cloud Run's port and the collector's default scrape are.
      args = ["worker", "--metrics-port", "8080"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.worker_cpu
          memory = var.worker_memory
        }
        cpu_idle = false # pulls without requests
      }

      dynamic "env" {
        for_each = local.common_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.worker_secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "datasets"
        mount_path = local.datasets_mount
      }

      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        tcp_socket {
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/metrics"
          port = 8080
        }
      }
    }

    dynamic "containers" {
      for_each = local.sidecars
      content {
        name       = "prometheus-collector"
        image      = containers.value
        depends_on = ["slipstream"]
        resources {
          limits = {
            cpu    = "500m"
            memory = "256Mi"
          }
        }
      }
    }

    volumes {
      name = "datasets"
      secret {
        secret = google_secret_manager_secret.datasets.secret_id
        items {
          version = google_secret_manager_secret_version.datasets.version
          path    = "datasets.yaml"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    google_secret_manager_secret_iam_member.worker,
    google_pubsub_subscription.broker,
    google_pubsub_subscription.dead_letter,
    google_bigquery_table.events,
    google_bigquery_table.quarantine,
  ]
}
