output "api_url" {
  description = "HTTPS URL of the API service."
  value       = google_cloud_run_v2_service.api.uri
}

output "broker_url" {
  description = "SLIPSTREAM_BROKER_URL the services run with (also for `slipstream publish` from elsewhere)."
  value       = local.broker_url
}

output "store_url" {
  description = "SLIPSTREAM_STORE_URL with store = bigquery; null with postgresql (the URL is in the store-url secret)."
  value       = local.store_url
}

output "topics" {
  description = "Per dataset: the broker topic, its dead letter topic, and (push delivery) the ingress topic producers publish to."
  value = {
    for ds in keys(local.datasets) : ds => {
      broker      = google_pubsub_topic.broker[ds].name
      dead_letter = google_pubsub_topic.dead_letter[ds].name
      ingress     = local.push ? google_pubsub_topic.ingress[ds].name : null
    }
  }
}

output "subscriptions" {
  description = "Per dataset: the broker subscription, the dead letter subscription and (push delivery) the push subscription."
  value = {
    for ds in keys(local.datasets) : ds => {
      broker      = google_pubsub_subscription.broker[ds].name
      dead_letter = google_pubsub_subscription.dead_letter[ds].name
      push        = local.push ? google_pubsub_subscription.push[ds].name : null
    }
  }
}

output "service_accounts" {
  description = "Emails of the service accounts: api, worker (pull) and pusher (push); null where not made."
  value = {
    api    = google_service_account.api.email
    worker = local.push ? null : google_service_account.worker[0].email
    pusher = local.push ? google_service_account.pusher[0].email : null
  }
}

output "bigquery_tables" {
  description = "Per dataset: fully qualified ids (project.dataset.table) of the events and quarantine tables (store = bigquery)."
  value = {
    for ds, t in google_bigquery_table.events : ds => {
      events     = "${t.project}.${t.dataset_id}.${t.table_id}"
      quarantine = "${google_bigquery_table.quarantine[ds].project}.${google_bigquery_table.quarantine[ds].dataset_id}.${google_bigquery_table.quarantine[ds].table_id}"
    }
  }
}

output "image_repository" {
  description = "Docker repository to push images to: REGION-docker.pkg.dev/PROJECT/REPOSITORY."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "secrets" {
  description = "Secret Manager secret ids whose versions are added out of band: api_keys, and store_url with postgresql."
  value = {
    api_keys  = google_secret_manager_secret.api_keys.secret_id
    store_url = var.store == "postgresql" ? google_secret_manager_secret.store_url[0].secret_id : null
  }
}

output "cloud_sql" {
  description = "With store = postgresql: the instance connection name and private IP; null otherwise."
  value = var.store == "postgresql" ? {
    connection_name = google_sql_database_instance.postgres[0].connection_name
    private_ip      = google_sql_database_instance.postgres[0].private_ip_address
    database        = google_sql_database.slipstream[0].name
  } : null
}

output "push_audience" {
  description = "Audience of the push subscriptions' OIDC tokens (SLIPSTREAM_PUBSUB_PUSH_AUDIENCE, and a Cloud Run custom audience)."
  value       = local.push_audience
}

output "alert_policies" {
  description = "Alert policy ids: burn-rate policies per \"<slo>-<severity>\", the spec's extra alerts by name, and the uptime policy."
  value = {
    burn_rate = { for k, p in google_monitoring_alert_policy.burn_rate : k => p.name }
    alerts    = { for k, p in google_monitoring_alert_policy.spec_alert : k => p.name }
    uptime    = google_monitoring_alert_policy.uptime.name
  }
}
