# --- where -------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project id that holds every resource (6-30 lower case letters, digits and hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be 6-30 characters: lower case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "region" {
  description = "Region of the Cloud Run services, Pub/Sub-facing resources, Artifact Registry and Cloud SQL, e.g. europe-west1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1 (not a zone)."
  }
}

variable "name_prefix" {
  description = "Starts every resource name; also the Pub/Sub prefix of SLIPSTREAM_BROKER_URL (pubsub://PROJECT?prefix=NAME), so topics are NAME-<dataset>."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}[a-z0-9]$", var.name_prefix)) && !startswith(var.name_prefix, "goog")
    error_message = "name_prefix must be 4-22 lower case letters, digits and hyphens, start with a letter, end with a letter or digit, and not start with goog."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

# --- what --------------------------------------------------------------------------------------

variable "datasets" {
  description = "The `datasets` list of the Slipstream datasets file (yamldecode(file(...)).datasets). Drives topics, subscriptions, tables and the file mounted into the containers."
  type = list(object({
    name        = string
    description = optional(string, "")
    key         = optional(string, "id")
    event_time  = string
    retention   = optional(string, "forever")
    fields = list(object({
      name        = string
      type        = string
      required    = optional(bool, false)
      description = optional(string, "")
      values      = optional(list(string))
    }))
  }))

  validation {
    condition     = length(var.datasets) > 0 && length(distinct([for ds in var.datasets : ds.name])) == length(var.datasets)
    error_message = "datasets must list at least one dataset, each name once."
  }

  validation {
    condition     = alltrue([for ds in var.datasets : can(regex("^[a-z][a-z0-9_]{0,62}$", ds.name))])
    error_message = "Dataset names are lower case letters, digits and _, starting with a letter (they name topics and tables)."
  }
}

variable "slo_spec" {
  description = "The parsed SLO spec (yamldecode of observability/slo/slos.yaml): SLOs, burn-rate alert policies and the spec's extra alerts are made from it."
  type        = any
}

variable "delivery" {
  description = "push: producers publish to NAME-<dataset>-ingress topics that Pub/Sub pushes to the API (/push/pubsub/<dataset>), and the API service also runs the worker. pull: producers publish to the broker topics directly and a separate worker service pulls them."
  type        = string
  default     = "push"

  validation {
    condition     = contains(["push", "pull"], var.delivery)
    error_message = "delivery must be push or pull."
  }
}

variable "store" {
  description = "Where events land: bigquery (a dataset with one table per Slipstream dataset) or postgresql (a private Cloud SQL instance)."
  type        = string
  default     = "bigquery"

  validation {
    condition     = contains(["bigquery", "postgresql"], var.store)
    error_message = "store must be bigquery or postgresql."
  }
}

# --- the containers ----------------------------------------------------------------------------

variable "image" {
  description = "Slipstream container image, pinned by tag or digest, e.g. europe-west1-docker.pkg.dev/PROJECT/slipstream/slipstream:1.4.2 or ...@sha256:<digest>. `:latest` (or no tag) is refused: a revision must name exactly what it runs so a rollback can return to it."
  type        = string

  validation {
    condition = (
      can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.image))
      && !can(regex(":latest$", var.image))
    )
    error_message = "image must be REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:DIGEST, and the tag must not be latest."
  }
}

variable "prometheus_sidecar_image" {
  description = "The Managed Service for Prometheus collector run beside each container; it scrapes :8080/metrics so the PromQL alert policies have data. null leaves it out (then the SLO alerts see nothing)."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"

  validation {
    condition     = var.prometheus_sidecar_image == null || !can(regex(":latest$", coalesce(var.prometheus_sidecar_image, "x")))
    error_message = "prometheus_sidecar_image must be pinned, not :latest."
  }
}

variable "api_ingress" {
  description = "Who may reach the API service: INGRESS_TRAFFIC_ALL (public URL; Pub/Sub push needs it unless a load balancer fronts the service), INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  type        = string
  default     = "INGRESS_TRAFFIC_ALL"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.api_ingress)
    error_message = "api_ingress must be INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "public_api" {
  description = "true (Cloud Run invoker for allUsers): Slipstream authenticates every caller itself, API keys on /v1 and the push OIDC token on /push/pubsub; /healthz, /readyz and /metrics are public. false: Cloud Run IAM in front, callers need roles/run.invoker (api_invokers) and send a Google ID token in Authorization and their API key in X-API-Key (which Slipstream reads first when both are present)."
  type        = bool
  default     = true
}

variable "api_invokers" {
  description = "Extra members given roles/run.invoker on the API service, e.g. [\"group:partners@example.com\"]. Public principals are refused here; use public_api."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.api_invokers : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):[^*]+$", m))
      && !contains(["allUsers", "allAuthenticatedUsers"], m)
    ])
    error_message = "api_invokers must be user:, group:, serviceAccount:, domain:, principal: or principalSet: members without wildcards."
  }
}

variable "api_min_instances" {
  description = "Fewest API instances kept warm (at least 1 with delivery = push, since the API then also runs the worker)."
  type        = number
  default     = 1

  validation {
    condition     = var.api_min_instances >= 0 && var.api_min_instances == floor(var.api_min_instances)
    error_message = "api_min_instances must be a whole number, 0 or more."
  }
}

variable "api_max_instances" {
  description = "Most API instances Cloud Run may start."
  type        = number
  default     = 10

  validation {
    condition     = var.api_max_instances >= 1 && var.api_max_instances <= 1000 && var.api_max_instances == floor(var.api_max_instances)
    error_message = "api_max_instances must be a whole number from 1 to 1000."
  }
}

variable "api_concurrency" {
  description = "Requests one API instance serves at once before Cloud Run starts another."
  type        = number
  default     = 80

  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 1000
    error_message = "api_concurrency must be from 1 to 1000."
  }
}

variable "api_cpu" {
  description = "CPU limit of the API container (Cloud Run notation: \"1\", \"2\", \"4\")."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.api_cpu)
    error_message = "api_cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "api_memory" {
  description = "Memory limit of the API container, e.g. 1Gi (the read cache lives here; see SLIPSTREAM_READ_CACHE_SIZE)."
  type        = string
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.api_memory))
    error_message = "api_memory must look like 512Mi or 2Gi."
  }
}

variable "worker_instances" {
  description = "Worker instances (delivery = pull only); they compete for the same subscriptions, so more means more throughput."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_instances >= 1 && var.worker_instances <= 100 && var.worker_instances == floor(var.worker_instances)
    error_message = "worker_instances must be a whole number from 1 to 100."
  }
}

variable "worker_cpu" {
  description = "CPU limit of a worker container (delivery = pull only)."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.worker_cpu)
    error_message = "worker_cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "worker_memory" {
  description = "Memory limit of a worker container (delivery = pull only), e.g. 1Gi."
  type        = string
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.worker_memory))
    error_message = "worker_memory must look like 512Mi or 2Gi."
  }
}

variable "settings" {
  description = "Extra SLIPSTREAM_* settings for every container, e.g. { SLIPSTREAM_BATCH_WAIT = \"5\" }. Broker, store, datasets, keys and leases are set by the module and cannot be overridden here."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.settings) : can(regex("^SLIPSTREAM_[A-Z_]+$", k))])
    error_message = "settings keys must be SLIPSTREAM_* variable names."
  }
}

variable "lease_seconds" {
  description = "SLIPSTREAM_LEASE_SECONDS and the broker subscriptions' ack deadline (Pub/Sub allows 10-600). BigQuery writes take seconds: keep it well above the write latency."
  type        = number
  default     = 120

  validation {
    condition     = var.lease_seconds >= 10 && var.lease_seconds <= 600
    error_message = "lease_seconds must be from 10 to 600 (Pub/Sub's ack deadline bounds)."
  }
}

variable "max_deliveries" {
  description = "SLIPSTREAM_MAX_DELIVERIES and every subscription's dead_letter_policy.max_delivery_attempts (Pub/Sub allows 5-100)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_deliveries >= 5 && var.max_deliveries <= 100
    error_message = "max_deliveries must be from 5 to 100 (Pub/Sub's dead letter policy bounds)."
  }
}

variable "push_ack_deadline_seconds" {
  description = "Ack deadline of the push subscriptions, which is also Pub/Sub's HTTP timeout for a push; the API answers once the event is on the broker (its publish gives up after 30 s)."
  type        = number
  default     = 60

  validation {
    condition     = var.push_ack_deadline_seconds >= 10 && var.push_ack_deadline_seconds <= 600
    error_message = "push_ack_deadline_seconds must be from 10 to 600."
  }
}

variable "producers" {
  description = "Members allowed to publish events to the producer-facing topics (ingress topics with delivery = push, the broker topics with pull), e.g. [\"serviceAccount:ops@p.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.producers : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):[^*]+$", m))])
    error_message = "producers must be user:, group:, serviceAccount:, domain:, principal: or principalSet: members without wildcards."
  }
}

# --- stores ------------------------------------------------------------------------------------

variable "bigquery_dataset_id" {
  description = "BigQuery dataset that holds the tables (store = bigquery): letters, digits and _."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.bigquery_dataset_id)) && length(var.bigquery_dataset_id) <= 1024
    error_message = "bigquery_dataset_id may hold only letters, digits and _."
  }
}

variable "bigquery_location" {
  description = "BigQuery location of the dataset and its jobs, e.g. EU, US or europe-west1."
  type        = string
  default     = "EU"

  validation {
    condition     = can(regex("^(EU|US|[a-z]+(-[a-z]+)+[0-9]+)$", var.bigquery_location))
    error_message = "bigquery_location must be EU, US or a region such as europe-west1."
  }
}

variable "bigquery_partition_expiration" {
  description = "true sets each table's partition expiration to the dataset's retention plus one day, so BigQuery drops whole days for free instead of the retention sweep's billed DELETE. Terraform re-applies it when the retention changes."
  type        = bool
  default     = true
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for BigQuery, Pub/Sub topics and the Cloud SQL instance; null uses Google-managed encryption. The services' agents need roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.kms_key_name, "x")))
    error_message = "kms_key_name must be a full Cloud KMS crypto key name."
  }
}

variable "network" {
  description = "VPC network (self link or projects/P/global/networks/N) with private services access configured; required when store = postgresql (Cloud SQL has a private IP only, reached through Cloud Run direct VPC egress)."
  type        = string
  default     = null
}

variable "subnetwork" {
  description = "Subnetwork in var.region for Cloud Run direct VPC egress (store = postgresql)."
  type        = string
  default     = null
}

variable "postgres_tier" {
  description = "Cloud SQL machine tier (store = postgresql), e.g. db-custom-2-7680."
  type        = string
  default     = "db-custom-2-7680"
}

variable "postgres_version" {
  description = "Cloud SQL PostgreSQL major version (store = postgresql)."
  type        = string
  default     = "POSTGRES_16"

  validation {
    condition     = can(regex("^POSTGRES_[0-9]+$", var.postgres_version))
    error_message = "postgres_version must look like POSTGRES_16."
  }
}

variable "deletion_protection" {
  description = "Protects the Cloud Run services, BigQuery tables and Cloud SQL instance from terraform destroy; turn off only to tear down a scratch environment."
  type        = bool
  default     = true
}

# --- monitoring --------------------------------------------------------------------------------

variable "notification_channels" {
  description = "Notification channel ids (projects/P/notificationChannels/N) per severity: page (burn-rate pages, uptime, broker/store down) and ticket."
  type = object({
    page   = optional(list(string), [])
    ticket = optional(list(string), [])
  })
  default = {}
}

variable "uptime_check_period" {
  description = "How often the /healthz uptime check runs: 60s, 300s, 600s or 900s."
  type        = string
  default     = "60s"

  validation {
    condition     = contains(["60s", "300s", "600s", "900s"], var.uptime_check_period)
    error_message = "uptime_check_period must be 60s, 300s, 600s or 900s."
  }
}
