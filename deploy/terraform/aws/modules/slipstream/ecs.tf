# ECS on Fargate: the api service (behind the ALB), the worker service (scaled on the queue
# backlog), the probe service (optional, probe_url) and a migrate task definition run by hand
# (docs/deploy-aws.md) that creates and migrates the tables. All run the same image.

locals {
  store_url = join("", [
    "postgresql://${var.db_username}@${aws_db_instance.main.address}:${aws_db_instance.main.port}/${var.db_name}",
    "?schema=${var.db_schema}&sslmode=require&pool_max=${var.db_pool_max}",
  ])

  base_environment = merge(
    {
      SLIPSTREAM_BROKER_URL       = "sqs://${var.region}?prefix=${var.name_prefix}"
      SLIPSTREAM_STORE_URL        = local.store_url
      SLIPSTREAM_CREATE_RESOURCES = "false"
      SLIPSTREAM_LEASE_SECONDS    = tostring(var.lease_seconds)
      SLIPSTREAM_MAX_DELIVERIES   = tostring(var.max_deliveries)
      SLIPSTREAM_HOST             = "0.0.0.0"
      SLIPSTREAM_PORT             = "8080"
      SLIPSTREAM_LOG_LEVEL        = var.log_level
    },
    var.datasets_file == null ? {} : { SLIPSTREAM_DATASETS = var.datasets_file },
  )
  # The caller's settings may add, never replace, the ones the infrastructure depends on.
  environment = merge(var.extra_environment, local.base_environment)

  # The tables are created by the migrate task (SLIPSTREAM_CREATE_RESOURCES=true), which opens an
  # embedded broker in its scratch space so that it touches no queue or topic: the queues and
  # topics belong to Terraform, and the long-running tasks never create anything.
  migrate_environment = merge(local.environment, {
    SLIPSTREAM_BROKER_URL       = "local:////tmp/migrate-queue.db"
    SLIPSTREAM_CREATE_RESOURCES = "true"
  })

  # Read-only root filesystem, non-root user, no Linux capabilities; /tmp is the only writable place.
  hardening = {
    readonlyRootFilesystem = true
    user                   = var.container_user
    linuxParameters = {
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }
    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
  }

  logging = {
    for name in ["api", "worker", "migrate", "probe"] : name => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.task[name].name
        awslogs-region        = var.region
        awslogs-stream-prefix = name
      }
    }
  }

  agent_enabled = var.cloudwatch_agent_image != null
  # One probe loop per dataset, each serving its metrics on its own port from 9465.
  probe_ports = { for i, d in var.datasets : d => 9465 + i }

  agent_container = {
    for name, ports in { api = [8080], worker = [9464], probe = values(local.probe_ports) } : name => {
      name                   = "cloudwatch-agent"
      image                  = var.cloudwatch_agent_image
      essential              = false
      # The agent writes its translated configuration under /opt/aws at start: its root
      # filesystem stays writable. It shares nothing with the Slipstream container but localhost.
      readonlyRootFilesystem = false
      environment = [
        { name = "CW_CONFIG_CONTENT", value = jsonencode(local.agent_config) },
        {
          name = "PROMETHEUS_CONFIG_CONTENT"
          value = yamlencode({
            global = { scrape_interval = "30s", scrape_timeout = "10s" }
            scrape_configs = [{
              job_name       = "slipstream"
              metrics_path   = "/metrics"
              static_configs = [{ targets = [for port in ports : "localhost:${port}"], labels = { process = name } }]
            }]
          })
        },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task[name].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "cloudwatch-agent"
        }
      }
    }
  }

  agent_config = {
    logs = {
      force_flush_interval = 15
      metrics_collected = {
        prometheus = {
          log_group_name         = aws_cloudwatch_log_group.prometheus.name
          prometheus_config_path = "env:PROMETHEUS_CONFIG_CONTENT"
          emf_processor = {
            metric_declaration_dedup = true
            metric_namespace         = var.prometheus_metrics_namespace
            metric_declaration       = local.agent_metric_declarations
          }
        }
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "task" {
  for_each = toset(["api", "worker", "migrate", "probe"])

  name              = "/slipstream/${var.name_prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
  tags              = local.tags
}

# Where the CloudWatch agent writes the scraped metrics as embedded metric format records;
# CloudWatch turns them into metrics of prometheus_metrics_namespace.
resource "aws_cloudwatch_log_group" "prometheus" {
  name              = "/slipstream/${var.name_prefix}/prometheus"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
  tags              = local.tags
}

resource "aws_ecs_cluster" "main" {
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name_prefix}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.api.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode(concat(
    [merge(local.hardening, {
      name             = "api"
      image            = var.image
      essential        = true
      entryPoint       = ["slipstream"]
      command          = ["api"]
      portMappings     = [{ name = "http", containerPort = 8080, protocol = "tcp" }]
      environment      = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      secrets          = local.container_secrets
      stopTimeout      = 30
      ulimits          = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      logConfiguration = local.logging["api"]
    })],
    local.agent_enabled ? [local.agent_container["api"]] : [],
  ))

  tags = local.tags
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name_prefix}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode(concat(
    [merge(local.hardening, {
      name        = "worker"
      image       = var.image
      essential   = true
      entryPoint  = ["slipstream"]
      command     = ["worker", "--metrics-port", "9464"]
      environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      # The worker serves no API: it gets the database password and nothing else.
      secrets = [for s in local.container_secrets : s if s.name == "PGPASSWORD"]
      # Fargate's most: time to finish the batch in hand and acknowledge it before SIGKILL.
      stopTimeout      = 120
      logConfiguration = local.logging["worker"]
    })],
    local.agent_enabled ? [local.agent_container["worker"]] : [],
  ))

  tags = local.tags
}

resource "aws_ecs_task_definition" "migrate" {
  family                   = "${var.name_prefix}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([merge(local.hardening, {
    name             = "migrate"
    image            = var.image
    essential        = true
    entryPoint       = ["slipstream"]
    command          = ["check"]
    environment      = [for k in sort(keys(local.migrate_environment)) : { name = k, value = local.migrate_environment[k] }]
    secrets          = [for s in local.container_secrets : s if s.name == "PGPASSWORD"]
    logConfiguration = local.logging["migrate"]
  })])

  tags = local.tags
}

resource "aws_ecs_task_definition" "probe" {
  count = local.probe_enabled ? 1 : 0

  family                   = "${var.name_prefix}-probe"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.probe[0].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode(concat(
    [for dataset, port in local.probe_ports : merge(local.hardening, {
      name       = "probe-${replace(dataset, "_", "-")}"
      image      = var.image
      essential  = true
      entryPoint = ["slipstream"]
      command = [
        "probe", "--url", coalesce(var.probe_url, "unset"), "--dataset", dataset,
        "--interval", tostring(var.probe_interval_seconds), "--metrics-port", tostring(port),
      ]
      environment      = [{ name = "SLIPSTREAM_LOG_LEVEL", value = var.log_level }]
      secrets          = [{ name = "SLIPSTREAM_PROBE_API_KEY", valueFrom = aws_secretsmanager_secret.probe_api_key[0].arn }]
      logConfiguration = local.logging["probe"]
    })],
    local.agent_enabled ? [local.agent_container["probe"]] : [],
  ))

  tags = local.tags
}

resource "aws_ecs_service" "probe" {
  count = local.probe_enabled ? 1 : 0

  name                    = "${var.name_prefix}-probe"
  cluster                 = aws_ecs_cluster.main.id
  task_definition         = aws_ecs_task_definition.probe[0].arn
  desired_count           = 1
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true

  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  tags = local.tags
}

resource "aws_ecs_service" "api" {
  name                              = "${var.name_prefix}-api"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.api_min_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true
  health_check_grace_period_seconds = 60

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  # A deployment whose tasks never turn healthy stops and rolls back to the last good task
  # definition revision on its own.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = aws_lb_target_group.api
    content {
      target_group_arn = load_balancer.value.arn
      container_name   = "api"
      container_port   = 8080
    }
  }

  tags = local.tags

  lifecycle {
    # Autoscaling owns the count once the service exists.
    ignore_changes = [desired_count]
  }

  # ECS refuses a target group not yet attached to the load balancer (by a listener or a rule).
  depends_on = [aws_lb_listener.https, aws_lb_listener_rule.ingest, aws_lb_listener_rule.read]
}

resource "aws_ecs_service" "worker" {
  name                    = "${var.name_prefix}-worker"
  cluster                 = aws_ecs_cluster.main.id
  task_definition         = aws_ecs_task_definition.worker.arn
  desired_count           = var.worker_min_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  tags = local.tags

  lifecycle {
    ignore_changes = [desired_count]
  }
}

# --- autoscaling -----------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.api_min_count
  max_capacity       = var.api_max_count
}

resource "aws_appautoscaling_policy" "api_cpu" {
  name               = "${var.name_prefix}-api-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count
}

# Step scaling on the backlog: messages visible across every dataset queue (one sum, since one
# worker serves all datasets). A step policy rather than target tracking because the backlog is
# not proportional to the number of workers: one worker writes batches of thousands, so a small
# backlog needs no second worker, and a large one needs several at once.
resource "aws_appautoscaling_policy" "worker_out" {
  name               = "${var.name_prefix}-worker-backlog-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 120
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = 3 * var.worker_scale_out_backlog
      scaling_adjustment          = 1
    }

    step_adjustment {
      metric_interval_lower_bound = 3 * var.worker_scale_out_backlog
      scaling_adjustment          = 2
    }
  }
}

resource "aws_appautoscaling_policy" "worker_in" {
  name               = "${var.name_prefix}-worker-backlog-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

locals {
  # SUM over the dataset queues of ApproximateNumberOfMessagesVisible, as metric math.
  backlog_queries = [
    for i, d in var.datasets : {
      id    = "q${i}"
      queue = local.queue_names[d]
    }
  ]
  backlog_expression = "SUM([${join(",", [for q in local.backlog_queries : q.id])}])"
}

resource "aws_cloudwatch_metric_alarm" "worker_backlog_high" {
  alarm_name          = "${var.name_prefix}-worker-backlog-high"
  alarm_description   = "Scales the worker out: messages waiting across the dataset queues."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.worker_scale_out_backlog
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.worker_out.arn]

  metric_query {
    id          = "backlog"
    expression  = local.backlog_expression
    label       = "Messages visible, all dataset queues"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.backlog_queries
    content {
      id = metric_query.value.id
      metric {
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = metric_query.value.queue }
        period      = 60
        stat        = "Maximum"
      }
    }
  }

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "worker_backlog_low" {
  alarm_name          = "${var.name_prefix}-worker-backlog-low"
  alarm_description   = "Scales the worker in: the dataset queues stayed nearly empty for 15 minutes."
  comparison_operator = "LessThanThreshold"
  threshold           = var.worker_scale_in_backlog
  evaluation_periods  = 15
  datapoints_to_alarm = 15
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_appautoscaling_policy.worker_in.arn]

  metric_query {
    id          = "backlog"
    expression  = local.backlog_expression
    label       = "Messages visible, all dataset queues"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.backlog_queries
    content {
      id = metric_query.value.id
      metric {
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = metric_query.value.queue }
        period      = 60
        stat        = "Maximum"
      }
    }
  }

  tags = local.tags
}
