output "tables" {
  description = "Per dataset name: columns, clustering, partition field, partition expiration (ms) and the quarantine table's definition."
  value       = local.tables
}

output "bq_types" {
  description = "Field type to BigQuery column type, as the BigQuery store maps them."
  value       = local.bq_types
}

output "datasets_file" {
  description = "The datasets file (JSON, which Slipstream reads as YAML) to mount into the containers."
  value       = local.datasets_file
}
