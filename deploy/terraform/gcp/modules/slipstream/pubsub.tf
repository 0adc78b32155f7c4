# Per dataset D (prefix P), the four resources the pubsub:// broker uses, with the settings it
# would give them itself (docs/backends/pubsub.md), plus, with push delivery, the topic producers
# publish to and its push subscription to the API.

resource "google_pubsub_topic" "broker" {
  for_each = local.datasets

  project      = var.project_id
  name         = "${local.prefix}-${each.key}"
  kms_key_name = var.kms_key_name
  labels       = merge(local.labels, { dataset = each.key })
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.datasets

  project      = var.project_id
  name         = "${local.prefix}-${each.key}-dlq"
  kms_key_name = var.kms_key_name
  labels       = merge(local.labels, { dataset = each.key })
}

# The worker pulls this one (the API's own worker with push delivery).
resource "google_pubsub_subscription" "broker" {
  for_each = local.datasets

  project = var.project_id
  name    = "${local.prefix}-${each.key}"
  topic   = google_pubsub_topic.broker[each.key].id
  labels  = merge(local.labels, { dataset = each.key })

  ack_deadline_seconds       = var.lease_seconds
  message_retention_duration = "604800s" # 7 days: a stopped worker loses nothing for a week

  expiration_policy {
    ttl = "" # never expires, however long no worker pulls
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_deliveries
  }

  # A released message comes back after 1-5 s, so a nack cannot spin.
  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "5s"
  }
}

# Without a subscription a topic keeps nothing: this one holds the dead letters, which the API
# lists and replays (GET/POST /v1/datasets/D/deadletter).
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.datasets

  project = var.project_id
  name    = "${local.prefix}-${each.key}-dlq"
  topic   = google_pubsub_topic.dead_letter[each.key].id
  labels  = merge(local.labels, { dataset = each.key })

  ack_deadline_seconds       = 60
  message_retention_duration = "2678400s" # 31 days, the most Pub/Sub keeps

  expiration_policy {
    ttl = ""
  }
}

# --- push delivery ------------------------------------------------------------------------------

# Producers publish one JSON event per message here; Pub/Sub pushes each to the API.
resource "google_pubsub_topic" "ingress" {
  for_each = local.push ? local.datasets : {}

  project      = var.project_id
  name         = "${local.prefix}-${each.key}-ingress"
  kms_key_name = var.kms_key_name
  labels       = merge(local.labels, { dataset = each.key })
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push ? local.datasets : {}

  project = var.project_id
  name    = "${local.prefix}-${each.key}-push"
  topic   = google_pubsub_topic.ingress[each.key].id
  labels  = merge(local.labels, { dataset = each.key })

  # Also Pub/Sub's HTTP timeout for the push: the API answers once the event is on the broker.
  ack_deadline_seconds       = var.push_ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.api.uri}/push/pubsub/${each.key}"

    # Cloud Run IAM checks this token (pusher has run.invoker) and Slipstream checks it again
    # (SLIPSTREAM_PUBSUB_PUSH_AUDIENCE / _SERVICE_ACCOUNT), so /push/pubsub is never open.
    oidc_token {
      service_account_email = google_service_account.pusher[0].email
      audience              = local.push_audience
    }
  }

  expiration_policy {
    ttl = ""
  }

  # Messages the API refused max_deliveries times (a 404 for a dataset removed from the file,
  # a long outage) go to the same dead letter topic as the broker's, so they show up in
  # GET /v1/datasets/D/deadletter and a replay sends them on to the broker.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_deliveries
  }

  # Back off further than the broker subscription does: a push that failed usually means the
  # API or the broker is down, and hammering it does not help.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.pusher_invoker,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}
