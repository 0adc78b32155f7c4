terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  # State in a versioned GCS bucket made before the first init (docs/deploy-gcp.md). A backend
  # block cannot read variables: override per environment with
  # `terraform init -backend-config="bucket=..." -backend-config="prefix=..."`.
  backend "gcs" {
    bucket = "example-slipstream-tfstate"
    prefix = "slipstream/production"
  }
}
