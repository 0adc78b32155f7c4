output "api_url" {
  description = "HTTPS URL of the API."
  value       = module.slipstream.api_url
}

output "topics" {
  description = "Topics per dataset."
  value       = module.slipstream.topics
}

output "service_accounts" {
  description = "Service account emails."
  value       = module.slipstream.service_accounts
}

output "bigquery_tables" {
  description = "BigQuery table ids per dataset."
  value       = module.slipstream.bigquery_tables
}

output "image_repository" {
  description = "Where to push images."
  value       = module.slipstream.image_repository
}

output "secrets" {
  description = "Secrets whose versions are added out of band."
  value       = module.slipstream.secrets
}

output "cloud_sql" {
  description = "With store = postgresql: connection name, private IP and database."
  value       = module.slipstream.cloud_sql
}
