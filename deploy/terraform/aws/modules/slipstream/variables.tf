# --- naming and placement -------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name, and the broker's `prefix` (queues and topics are named PREFIX-DATASET). Lower case letters, digits and hyphens, starting with a letter: it also names the ALB, target groups and the RDS instance, which allow nothing else."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 2 to 20 characters, lower case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "region" {
  description = "AWS region of every resource; it goes into the broker URL (sqs://REGION)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region: an AWS region code such as us-east-1 or eu-west-3."
  }
}

variable "datasets" {
  description = "Names of the datasets declared in the datasets file the image runs with; each gets a topic, a queue and a dead letter queue."
  type        = list(string)

  validation {
    condition     = length(var.datasets) > 0 && alltrue([for d in var.datasets : can(regex("^[a-z][a-z0-9_]{0,62}$", d))])
    error_message = "datasets: at least one, each a dataset name (lower case letter, then letters, digits and _)."
  }

  validation {
    # The broker refuses a dead letter queue name (PREFIX-DATASET-dlq) over SQS's 80 characters.
    condition     = alltrue([for d in var.datasets : length("${var.name_prefix}-${d}-dlq") <= 80])
    error_message = "datasets: PREFIX-DATASET-dlq must fit in 80 characters (SQS's limit on queue names)."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes them."
  type        = map(string)
  default     = {}
}

# --- network (an existing VPC) --------------------------------------------------------------------

variable "vpc_id" {
  description = "ID of the VPC everything runs in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id: a VPC ID such as vpc-0abc1234def567890."
  }
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (public ones for an internet-facing ALB), in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2 && alltrue([for s in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "public_subnet_ids: at least two subnet IDs (an ALB spans two or more zones)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the ECS tasks; they reach AWS APIs and the image registry through a NAT gateway or VPC endpoints."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "private_subnet_ids: at least one subnet ID."
  }
}

variable "database_subnet_ids" {
  description = "Private subnets of the RDS subnet group, in at least two availability zones (RDS requires two even for a single-AZ instance)."
  type        = list(string)

  validation {
    condition     = length(var.database_subnet_ids) >= 2 && alltrue([for s in var.database_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "database_subnet_ids: at least two subnet IDs."
  }
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the load balancer on ports 80 and 443."
  type        = list(string)

  validation {
    condition     = length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "alb_ingress_cidrs: one or more IPv4 CIDR blocks such as 203.0.113.0/24."
  }
}

# --- the image and the processes ------------------------------------------------------------------

variable "image" {
  description = "Container image of Slipstream, pinned by tag or digest (REGISTRY/REPOSITORY:TAG or @sha256:...). The api, worker and migrate tasks all run it."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image: a registry path with an explicit tag or digest, and not :latest (a moving tag makes a rollback redeploy whatever it points at now)."
  }
}

variable "container_user" {
  description = "UID:GID the Slipstream containers run as; never root."
  type        = string
  default     = "10001:10001"

  validation {
    condition     = can(regex("^[1-9][0-9]*(:[1-9][0-9]*)?$", var.container_user))
    error_message = "container_user: a numeric non-zero UID, optionally :GID (root, 0, is refused)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks: X86_64 or ARM64 (Graviton, about 20% cheaper); the image must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "datasets_file" {
  description = "Path of the datasets YAML file inside the image (SLIPSTREAM_DATASETS); null runs the packaged default."
  type        = string
  default     = null
}

variable "log_level" {
  description = "SLIPSTREAM_LOG_LEVEL of every process."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warning", "error"], var.log_level)
    error_message = "log_level: debug, info, warning or error."
  }
}

variable "extra_environment" {
  description = "More SLIPSTREAM_* settings for the api and worker containers (for example SLIPSTREAM_BATCH_SIZE); the module sets the broker, store, host, port, lease, deliveries and create-resources ones itself."
  type        = map(string)
  default     = {}
}

variable "lease_seconds" {
  description = "SLIPSTREAM_LEASE_SECONDS, and the queues' visibility timeout (whole seconds), so that the visibility timeout is never shorter than the worker's lease."
  type        = number
  default     = 30

  validation {
    condition     = var.lease_seconds >= 1 && var.lease_seconds <= 43200 && floor(var.lease_seconds) == var.lease_seconds
    error_message = "lease_seconds: whole seconds from 1 to 43200 (SQS's visibility timeout range)."
  }
}

variable "max_deliveries" {
  description = "SLIPSTREAM_MAX_DELIVERIES, and the redrive policy's maxReceiveCount: deliveries before SQS moves a message to the dead letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_deliveries >= 1 && var.max_deliveries <= 1000 && floor(var.max_deliveries) == var.max_deliveries
    error_message = "max_deliveries: a whole number from 1 to 1000 (SQS's maxReceiveCount range)."
  }
}

variable "queue_retention_seconds" {
  description = "How long a message waits in a dataset queue. Kept shorter than the dead letter queues' 14 days: SQS counts a moved message's age from its first enqueue, so the difference is the least time a dead letter is kept."
  type        = number
  default     = 604800

  validation {
    condition     = var.queue_retention_seconds >= 60 && var.queue_retention_seconds < 1209600
    error_message = "queue_retention_seconds: from 60 s to less than 14 days (1209600 s, the dead letter queues' retention)."
  }
}

variable "probe_url" {
  description = "Base URL the synthetic probe (`slipstream probe`, one loop per dataset) calls, the API's public name such as https://api.example.com; null runs no probe. It goes through the load balancer like a producer, so alb_ingress_cidrs must admit the NAT gateways' addresses."
  type        = string
  default     = null

  validation {
    condition     = var.probe_url == null || can(regex("^https?://[^/\\s]+$", coalesce(var.probe_url, "https://x")))
    error_message = "probe_url: a base URL such as https://api.example.com (no path)."
  }
}

variable "probe_interval_seconds" {
  description = "Seconds from one probe run's start to the next (the SLO spec assumes 30)."
  type        = number
  default     = 30
}

# --- sizes ----------------------------------------------------------------------------------------

variable "api_cpu" {
  description = "CPU units of an api task (1024 = 1 vCPU); a valid Fargate size together with api_memory."
  type        = number
  default     = 512
}

variable "api_memory" {
  description = "Memory (MiB) of an api task."
  type        = number
  default     = 1024
}

variable "api_min_count" {
  description = "Fewest api tasks; two or more keeps the API up through a task replacement or a zone outage."
  type        = number
  default     = 2

  validation {
    condition     = var.api_min_count >= 1
    error_message = "api_min_count: at least 1."
  }
}

variable "api_max_count" {
  description = "Most api tasks (CPU target tracking scales between the two)."
  type        = number
  default     = 6

  validation {
    condition     = var.api_max_count >= var.api_min_count
    error_message = "api_max_count: at least api_min_count."
  }
}

variable "worker_cpu" {
  description = "CPU units of a worker task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "worker_memory" {
  description = "Memory (MiB) of a worker task."
  type        = number
  default     = 2048
}

variable "worker_min_count" {
  description = "Fewest worker tasks."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_count >= 1
    error_message = "worker_min_count: at least 1 (freshness depends on a worker always running)."
  }
}

variable "worker_max_count" {
  description = "Most worker tasks when the backlog grows."
  type        = number
  default     = 8

  validation {
    condition     = var.worker_max_count >= var.worker_min_count
    error_message = "worker_max_count: at least worker_min_count."
  }
}

variable "worker_scale_out_backlog" {
  description = "Messages visible across the dataset queues above which a worker task is added (step scaling; a second step adds two at four times this)."
  type        = number
  default     = 5000
}

variable "worker_scale_in_backlog" {
  description = "Messages visible across the dataset queues below which, for 15 minutes, a worker task is removed."
  type        = number
  default     = 100

  validation {
    condition     = var.worker_scale_in_backlog >= 0
    error_message = "worker_scale_in_backlog: zero or more."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ..., 3653)."
  }
}

# --- load balancer --------------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ARN of the ACM certificate of the HTTPS listener (in the same region)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn: an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)."
  }
}

variable "alb_internal" {
  description = "Make the load balancer internal (reachable only inside the VPC and peered networks)."
  type        = bool
  default     = false
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before a terraform destroy)."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for the load balancer's access logs (its policy must let the region's ELB account write); null turns access logs off."
  type        = string
  default     = null
}

variable "alb_expose_metrics" {
  description = "Serve /metrics through the load balancer. Off by default: the metrics are scraped inside the task, and the route names every dataset."
  type        = bool
  default     = false
}

variable "waf_web_acl_arn" {
  description = "ARN of a WAFv2 web ACL to associate with the load balancer; null associates none."
  type        = string
  default     = null
}

# --- database -------------------------------------------------------------------------------------

variable "db_engine_version" {
  description = "PostgreSQL version of the RDS instance, major (\"16\") or major.minor; minor upgrades are applied in the maintenance window."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^1[2-9](\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version: PostgreSQL 12 or newer, such as 16 or 16.4."
  }
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial storage of the RDS instance, GiB (gp3)."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage" {
  description = "Ceiling of RDS storage autoscaling, GiB."
  type        = number
  default     = 500

  validation {
    condition     = var.db_max_allocated_storage >= var.db_allocated_storage
    error_message = "db_max_allocated_storage: at least db_allocated_storage."
  }
}

variable "db_name" {
  description = "Database Slipstream uses."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name: a lower case identifier."
  }
}

variable "db_username" {
  description = "Master user of the RDS instance, which Slipstream connects as; RDS keeps its password in Secrets Manager."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_username)) && !contains(["postgres", "admin", "rdsadmin"], var.db_username)
    error_message = "db_username: a lower case identifier, not a reserved name."
  }
}

variable "db_schema" {
  description = "Schema holding Slipstream's tables (the store URL's `schema`); PostgreSQL 15 and newer keep ordinary users out of public."
  type        = string
  default     = "slipstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_schema))
    error_message = "db_schema: a lower case identifier."
  }
}

variable "db_pool_max" {
  description = "Connections each api or worker task may open (the store URL's pool_max); (api_max_count + worker_max_count) × this must stay under the instance's max_connections."
  type        = number
  default     = 10
}

variable "db_multi_az" {
  description = "Run the RDS instance with a standby in a second availability zone (failover in about a minute; doubles the instance cost)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days: 1 to 35."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the RDS instance (turn off before a terraform destroy)."
  type        = bool
  default     = true
}

variable "db_performance_insights" {
  description = "Turn on Performance Insights (7 days free), encrypted with the module's KMS key."
  type        = bool
  default     = true
}

variable "db_monitoring_interval" {
  description = "Seconds between RDS enhanced monitoring samples; 0 turns it off."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval: 0, 1, 5, 10, 15, 30 or 60."
  }
}

# --- monitoring -----------------------------------------------------------------------------------

variable "slo_spec" {
  description = "The SLO spec, decoded: yamldecode(file(\"observability/slo/slos.yaml\")). Burn-rate and threshold alarms are made from it for every SLO CloudWatch can measure."
  type        = any

  validation {
    condition     = can([for s in var.slo_spec.slos : [s.name, s.objective, s.sli.type, s.sli.metric]])
    error_message = "slo_spec: the decoded observability/slo/slos.yaml, with slos[*].name, objective, sli.type and sli.metric."
  }
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the page and ticket alarm topics (each must confirm); connect paging tools to the topic ARNs in the outputs instead when you have them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails: email addresses."
  }
}

variable "backlog_age_alarm_seconds" {
  description = "Age of the oldest message in a dataset queue above which the backlog alarm pages (the worker is falling behind or stopped)."
  type        = number
  default     = 300
}

variable "db_free_storage_alarm_gib" {
  description = "Free RDS storage, GiB, below which an alarm opens a ticket."
  type        = number
  default     = 10
}

variable "cloudwatch_agent_image" {
  description = "CloudWatch agent image pinned to a version (for example from public.ecr.aws/cloudwatch-agent/cloudwatch-agent). When set, each api and worker task runs it as a sidecar that scrapes Slipstream's /metrics into CloudWatch, which the freshness and probe alarms read; null runs no sidecar."
  type        = string
  default     = null

  validation {
    condition     = var.cloudwatch_agent_image == null || (can(regex("^[^@\\s]+?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", coalesce(var.cloudwatch_agent_image, "x:1"))) && !endswith(coalesce(var.cloudwatch_agent_image, "x:1"), ":latest"))
    error_message = "cloudwatch_agent_image: an image with an explicit version tag or digest, not :latest."
  }
}

variable "prometheus_metrics_namespace" {
  description = "CloudWatch namespace the agent publishes the scraped Prometheus metrics in."
  type        = string
  default     = "Slipstream/Prometheus"
}

variable "prometheus_workspace_id" {
  description = "ID of an Amazon Managed Service for Prometheus workspace; with it, prometheus_rules are loaded there as rule group namespaces. null loads none."
  type        = string
  default     = null
}

variable "prometheus_rules" {
  description = "Prometheus rule files (file name => YAML content), the ones generated into observability/prometheus/rules/ by `slipstream slo generate`."
  type        = map(string)
  default     = {}
}
