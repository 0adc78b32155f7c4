# Identities and least privilege: every grant is on the one resource that needs it, except
# BigQuery jobUser and Monitoring metricWriter, which only exist at project level. No primitive
# roles (owner/editor/viewer), no wildcards.

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${local.prefix}-api"
  display_name = "Slipstream API (${local.prefix})"
  description  = "Runs the Slipstream API service${local.api_runs_worker ? " and its in-process worker" : ""}."
}

resource "google_service_account" "worker" {
  count = local.push ? 0 : 1

  project      = var.project_id
  account_id   = "${local.prefix}-worker"
  display_name = "Slipstream worker (${local.prefix})"
  description  = "Runs the Slipstream worker service: pulls the broker subscriptions, writes the store."
}

# The identity Pub/Sub push authenticates as; it can do nothing but invoke the API.
resource "google_service_account" "pusher" {
  count = local.push ? 1 : 0

  project      = var.project_id
  account_id   = "${local.prefix}-pusher"
  display_name = "Slipstream Pub/Sub push (${local.prefix})"
  description  = "OIDC identity of the push subscriptions; holds run.invoker on the API only."
}

locals {
  members = {
    api          = "serviceAccount:${google_service_account.api.email}"
    worker       = local.push ? "serviceAccount:${google_service_account.api.email}" : "serviceAccount:${google_service_account.worker[0].email}"
    pubsub_agent = local.pubsub_agent
  }
  # Who runs the worker loop: the API service itself with push delivery.
  runtimes = local.push ? ["api"] : ["api", "worker"]

  producers = { for i, m in var.producers : "producer${i}" => m }

  # Per dataset: what each identity needs on each Pub/Sub resource, and why.
  #   api:    publish events (ingest, push, replays); list and replay dead letters;
  #   worker: pull and ack; publish what it dead-letters;
  #   both:   pubsub.viewer to check at start that the four resources exist;
  #   Pub/Sub's agent: the dead letter policy needs publisher on the dead letter topic and
  #           subscriber on the subscriptions whose messages it moves.
  pubsub_grants = flatten([
    for ds in keys(local.datasets) : concat(
      [for who in local.runtimes : { kind = "topic", res = "broker", ds = ds, role = "roles/pubsub.viewer", who = who }],
      [for who in local.runtimes : { kind = "topic", res = "dead_letter", ds = ds, role = "roles/pubsub.viewer", who = who }],
      [for who in local.runtimes : { kind = "subscription", res = "broker", ds = ds, role = "roles/pubsub.viewer", who = who }],
      [for who in local.runtimes : { kind = "subscription", res = "dead_letter", ds = ds, role = "roles/pubsub.viewer", who = who }],
      [
        { kind = "topic", res = "broker", ds = ds, role = "roles/pubsub.publisher", who = "api" },
        { kind = "topic", res = "dead_letter", ds = ds, role = "roles/pubsub.publisher", who = local.push ? "api" : "worker" },
        { kind = "subscription", res = "broker", ds = ds, role = "roles/pubsub.subscriber", who = local.push ? "api" : "worker" },
        { kind = "subscription", res = "dead_letter", ds = ds, role = "roles/pubsub.subscriber", who = "api" },
        { kind = "topic", res = "dead_letter", ds = ds, role = "roles/pubsub.publisher", who = "pubsub_agent" },
        { kind = "subscription", res = "broker", ds = ds, role = "roles/pubsub.subscriber", who = "pubsub_agent" },
      ],
      local.push ? [{ kind = "subscription", res = "push", ds = ds, role = "roles/pubsub.subscriber", who = "pubsub_agent" }] : [],
    )
  ])
  topic_grants = {
    for g in local.pubsub_grants : "${g.res}/${g.ds}/${g.role}/${g.who}" => g if g.kind == "topic"
  }
  subscription_grants = {
    for g in local.pubsub_grants : "${g.res}/${g.ds}/${g.role}/${g.who}" => g if g.kind == "subscription"
  }

  # Producers publish to ingress topics with push delivery, to the broker topics with pull.
  producer_grants = {
    for pair in setproduct(keys(local.datasets), keys(local.producers)) : "${pair[0]}/${pair[1]}" => {
      ds     = pair[0]
      member = local.producers[pair[1]]
    }
  }
}

# --- Pub/Sub -------------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "runtime" {
  for_each = local.topic_grants

  project = var.project_id
  topic   = each.value.res == "broker" ? google_pubsub_topic.broker[each.value.ds].name : google_pubsub_topic.dead_letter[each.value.ds].name
  role    = each.value.role
  member  = local.members[each.value.who]
}

resource "google_pubsub_subscription_iam_member" "runtime" {
  for_each = local.subscription_grants

  project = var.project_id
  subscription = (
    each.value.res == "broker" ? google_pubsub_subscription.broker[each.value.ds].name :
    each.value.res == "dead_letter" ? google_pubsub_subscription.dead_letter[each.value.ds].name :
    google_pubsub_subscription.push[each.value.ds].name
  )
  role   = each.value.role
  member = local.members[each.value.who]
}

resource "google_pubsub_topic_iam_member" "producers" {
  for_each = local.producer_grants

  project = var.project_id
  topic   = local.push ? google_pubsub_topic.ingress[each.value.ds].name : google_pubsub_topic.broker[each.value.ds].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

# Lets Pub/Sub mint the push OIDC tokens for the pusher (needed on projects made before 2021).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  count = local.push ? 1 : 0

  service_account_id = google_service_account.pusher[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- Cloud Run -----------------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "pusher_invoker" {
  count = local.push ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pusher[0].email}"
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.api_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Partners without a Google identity: Slipstream's API keys guard /v1, its OIDC check /push.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public_api ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The uptime check authenticates as Cloud Monitoring's agent when the API is not public.
resource "google_cloud_run_v2_service_iam_member" "uptime_invoker" {
  count = var.public_api ? 0 : 1

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
}

# --- BigQuery --------------------------------------------------------------------------------------

# Read and write the tables, make and drop staging tables: on the one dataset only.
resource "google_bigquery_dataset_iam_member" "data_editor" {
  for_each = var.store == "bigquery" ? toset(local.runtimes) : toset([])

  project    = var.project_id
  dataset_id = google_bigquery_dataset.this[0].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.members[each.key]
}

# Running load, query and DML jobs is a project permission; it grants no data access.
resource "google_project_iam_member" "bigquery_job_user" {
  for_each = var.store == "bigquery" ? toset(local.runtimes) : toset([])

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.members[each.key]
}

# The Prometheus collector beside each container writes the metrics the alerts read.
resource "google_project_iam_member" "metric_writer" {
  for_each = var.prometheus_sidecar_image == null ? toset([]) : toset(local.runtimes)

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = local.members[each.key]
}

# --- Secret Manager --------------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "api" {
  for_each = merge(
    {
      api_keys = google_secret_manager_secret.api_keys.secret_id
      datasets = google_secret_manager_secret.datasets.secret_id
    },
    var.store == "postgresql" ? { store_url = google_secret_manager_secret.store_url[0].secret_id } : {},
  )

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = local.members.api
}

resource "google_secret_manager_secret_iam_member" "worker" {
  for_each = local.push ? {} : merge(
    { datasets = google_secret_manager_secret.datasets.secret_id },
    var.store == "postgresql" ? { store_url = google_secret_manager_secret.store_url[0].secret_id } : {},
  )

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}
