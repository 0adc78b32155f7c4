# The API behind an Application Load Balancer. Three target groups hold the same api tasks, so
# that CloudWatch measures the SLIs per kind of request with the ALB's own metrics:
#   ingest  POST /v1/datasets/*/events and /push/*     -> ingest-acceptance
#   read    GET and HEAD /v1/*                          -> read-latency (TargetResponseTime)
#   default everything else (health, docs, admin POSTs)
# api-availability is the whole load balancer.

locals {
  target_groups = {
    default = { name = "${var.name_prefix}-api" }
    ingest  = { name = "${var.name_prefix}-ingest" }
    read    = { name = "${var.name_prefix}-read" }
  }
}

resource "aws_lb" "api" {
  name                       = var.name_prefix
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  desync_mitigation_mode     = "defensive"
  idle_timeout               = 60

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name_prefix
      enabled = true
    }
  }

  tags = local.tags
}

resource "aws_lb_target_group" "api" {
  for_each = local.target_groups

  name                 = each.value.name
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  # Ready means broker and store reachable: a task that lost either leaves the rotation, and a new
  # task enters it only once it can serve.
  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(local.tags, { "slipstream:route-class" = each.key })
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api["default"].arn
  }

  tags = local.tags
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.api.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }

  tags = local.tags
}

resource "aws_lb_listener_rule" "metrics" {
  count = var.alb_expose_metrics ? 0 : 1

  listener_arn = aws_lb_listener.https.arn
  priority     = 5

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = "{\"error\": {\"code\": \"not_found\", \"message\": \"/metrics is scraped inside the VPC\", \"details\": null}}"
    }
  }

  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }

  tags = local.tags
}

resource "aws_lb_listener_rule" "ingest" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api["ingest"].arn
  }

  condition {
    http_request_method {
      values = ["POST"]
    }
  }

  condition {
    path_pattern {
      values = ["/v1/datasets/*/events", "/push/*"]
    }
  }

  tags = local.tags
}

resource "aws_lb_listener_rule" "read" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 20

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api["read"].arn
  }

  condition {
    http_request_method {
      values = ["GET", "HEAD"]
    }
  }

  condition {
    path_pattern {
      values = ["/v1/*"]
    }
  }

  tags = local.tags
}

resource "aws_wafv2_web_acl_association" "api" {
  count = var.waf_web_acl_arn == null ? 0 : 1

  resource_arn = aws_lb.api.arn
  web_acl_arn  = var.waf_web_acl_arn
}
