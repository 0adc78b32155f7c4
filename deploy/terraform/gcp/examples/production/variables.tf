variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the services, e.g. europe-west1."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name and of the Pub/Sub topics."
  type        = string
  default     = "slipstream"
}

variable "image" {
  description = "Slipstream image pinned by tag or digest (not :latest), usually in the repository this deployment makes."
  type        = string
}

variable "delivery" {
  description = "push (Pub/Sub pushes to the API, which also runs the worker) or pull (a separate worker service)."
  type        = string
  default     = "push"
}

variable "store" {
  description = "bigquery or postgresql."
  type        = string
  default     = "bigquery"
}

variable "datasets_file" {
  description = "Path of the datasets YAML file; null uses the packaged flights dataset of this repository."
  type        = string
  default     = null
}

variable "public_api" {
  description = "true: anyone may reach the API and Slipstream's API keys (and the push OIDC check) guard it; false: Cloud Run IAM in front (see the module's variable)."
  type        = bool
  default     = true
}

variable "api_invokers" {
  description = "Members given roles/run.invoker on the API."
  type        = list(string)
  default     = []
}

variable "producers" {
  description = "Members allowed to publish events to the producer-facing topics."
  type        = list(string)
  default     = []
}

variable "api_min_instances" {
  description = "Fewest API instances."
  type        = number
  default     = 1
}

variable "api_max_instances" {
  description = "Most API instances."
  type        = number
  default     = 10
}

variable "worker_instances" {
  description = "Worker instances with delivery = pull."
  type        = number
  default     = 1
}

variable "bigquery_location" {
  description = "BigQuery location (EU, US or a region)."
  type        = string
  default     = "EU"
}

variable "network" {
  description = "VPC network with private services access (store = postgresql)."
  type        = string
  default     = null
}

variable "subnetwork" {
  description = "Subnetwork in the region for Cloud Run VPC egress (store = postgresql)."
  type        = string
  default     = null
}

variable "notification_channels" {
  description = "Notification channel ids per severity (page, ticket)."
  type = object({
    page   = optional(list(string), [])
    ticket = optional(list(string), [])
  })
  default = {}
}
