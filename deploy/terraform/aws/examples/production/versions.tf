terraform {
  # 1.10 for S3-native state locking (use_lockfile).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
  }

  # State in S3, encrypted, with S3-native locking: Terraform writes a .tflock object next to the
  # state with a conditional put, so no DynamoDB table has to exist, be paid for or be secured
  # (the S3 backend's documentation marks DynamoDB locking deprecated). Bucket, key and
  # region come from backend.hcl at `terraform init -backend-config=backend.hcl`, so this file
  # names no account.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
