# The Docker repository the images are pushed to. Tags are immutable, so a tag names one image
# for good and a rollback to it runs exactly what ran before.

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = local.prefix
  format        = "DOCKER"
  description   = "Slipstream container images (${local.prefix})."
  labels        = local.labels
  kms_key_name  = var.kms_key_name

  docker_config {
    immutable_tags = true
  }

  # Untagged images (left behind by a re-push) go after 30 days; tagged ones are kept.
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
}
