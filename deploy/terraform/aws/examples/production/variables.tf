variable "region" {
  description = "AWS region to deploy to."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region: an AWS region code such as eu-west-1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name and the broker's queue and topic prefix."
  type        = string
  default     = "slipstream"
}

variable "image" {
  description = "Slipstream image pinned by tag or digest, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipstream:1.4.2."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate (same region) for the API's host name."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC; a /16 is split into /20 subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr: an IPv4 CIDR block of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones (names such as eu-west-1a) to spread the subnets over: two or three, in the region."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3 && alltrue([for z in var.availability_zones : startswith(z, var.region)])
    error_message = "availability_zones: two or three zones of the region, such as [\"eu-west-1a\", \"eu-west-1b\"]."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone: cheaper, but the tasks lose AWS APIs when its zone fails."
  type        = bool
  default     = false
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the API."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "alb_access_logs_bucket" {
  description = "Existing S3 bucket for ALB access logs, or null."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Deletion protection of the load balancer and the database."
  type        = bool
  default     = true
}

variable "db_multi_az" {
  description = "Multi-AZ RDS instance."
  type        = bool
  default     = true
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "alarm_emails" {
  description = "Email addresses that receive alarm notifications."
  type        = list(string)
  default     = []
}

variable "cloudwatch_agent_image" {
  description = "Pinned CloudWatch agent image for the metrics sidecar, or null for none."
  type        = string
  default     = null
}

variable "prometheus_workspace_id" {
  description = "Amazon Managed Service for Prometheus workspace to load the generated rules into, or null."
  type        = string
  default     = null
}

variable "api_url" {
  description = "The API's public base URL (https://HOST, the certificate's name, with a DNS record to the load balancer). The synthetic probe runs against it; null runs no probe."
  type        = string
  default     = null
}
