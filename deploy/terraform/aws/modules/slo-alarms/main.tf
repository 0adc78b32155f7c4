# What CloudWatch alarms to make from the SLO spec: a plan of plain values, no resources and no
# provider, so that it can be evaluated (and tested) anywhere with `terraform apply` on a
# throwaway root. The slipstream module turns it into alarms (its alarms.tf).

locals {
  burn_rules = {
    "page-fast"   = { severity = "page", factor = 14.4, long = 3600, short = 300 }
    "page-slow"   = { severity = "page", factor = 6, long = 21600, short = 1800 }
    "ticket-fast" = { severity = "ticket", factor = 3, long = 86400, short = 7200 }
    "ticket-slow" = { severity = "ticket", factor = 1, long = 259200, short = 21600 }
  }
  window_labels = {
    "300" = "5m", "1800" = "30m", "3600" = "1h", "7200" = "2h", "21600" = "6h", "86400" = "1d", "259200" = "3d"
  }

  slos = { for s in var.slo_spec.slos : s.name => s }

  # Where CloudWatch measures each SLI, decided by the Prometheus metric the SLI is defined on:
  #   alb          HTTP request ratio SLIs: the whole load balancer's 5xx over requests
  #   alb-ingest   the same restricted to POST (ingest): the ingest target group
  #   alb-latency  HTTP latency SLIs: TargetResponseTime percentile of the read target group
  #   agent        any other SLI with an empty selector: the scraped metric the CloudWatch agent
  #                publishes (a ratio needs a one-label `bad` selector of literal values)
  #   none         not measured in CloudWatch: Prometheus-side only
  slo_source = {
    for name, s in local.slos : name => (
      s.sli.metric == "slipstream_http_requests_total" ? (upper(try(s.sli.selector.method, "")) == "POST" ? "alb-ingest" : "alb") :
      s.sli.metric == "slipstream_http_request_duration_seconds" ? "alb-latency" :
      !var.agent_enabled || length(try(s.sli.selector, {})) > 0 ? "none" :
      s.sli.type == "latency" ? "agent" :
      s.sli.type == "ratio" && length(try(s.sli.bad, {})) == 1 && can(regex("^[A-Za-z0-9_.-]+(\\|[A-Za-z0-9_.-]+)*$", try(values(s.sli.bad)[0], "("))) ? "agent" :
      "none"
    )
  }

  slo_scopes = {
    for name, s in local.slos : name => contains(try(s.group_by, []), "dataset") ? var.datasets : ["all"]
  }

  alb_dims    = { LoadBalancer = var.load_balancer }
  ingest_dims = { LoadBalancer = var.load_balancer, TargetGroup = var.ingest_target_group }
  read_dims   = { LoadBalancer = var.load_balancer, TargetGroup = var.read_target_group }

  # Prometheus writes a histogram bucket's bound as a float ("10.0", "0.25").
  le_label = {
    for name, s in local.slos : name => (
      floor(try(s.sli.threshold, 0)) == try(s.sli.threshold, 0) ? format("%d.0", try(s.sli.threshold, 0)) : tostring(try(s.sli.threshold, 0))
    )
  }

  # Each SLO scope (the SLO, per dataset when it is grouped by dataset) as bad (or good) series over
  # a total, all summed over the alarm's window.
  burn_scopes = merge(
    {
      for name, source in local.slo_source : "${name}/all" => {
        slo   = name
        scope = "all"
        mode  = "bad"
        parts = [
          { namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", dims = local.alb_dims },
          { namespace = "AWS/ApplicationELB", metric = "HTTPCode_ELB_5XX_Count", dims = local.alb_dims },
        ]
        total = { namespace = "AWS/ApplicationELB", metric = "RequestCount", dims = local.alb_dims }
      } if source == "alb"
    },
    {
      for name, source in local.slo_source : "${name}/all" => {
        slo   = name
        scope = "all"
        mode  = "bad"
        parts = [
          { namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", dims = local.ingest_dims },
        ]
        total = { namespace = "AWS/ApplicationELB", metric = "RequestCount", dims = local.ingest_dims }
      } if source == "alb-ingest"
    },
    merge([
      for name, source in local.slo_source : {
        for scope in local.slo_scopes[name] : "${name}/${scope}" => {
          slo   = name
          scope = scope
          mode  = "bad"
          parts = [
            for value in split("|", values(local.slos[name].sli.bad)[0]) : {
              namespace = var.metrics_namespace
              metric    = local.slos[name].sli.metric
              dims      = merge(scope == "all" ? {} : { dataset = scope }, { (keys(local.slos[name].sli.bad)[0]) = value })
            }
          ]
          total = {
            namespace = var.metrics_namespace
            metric    = local.slos[name].sli.metric
            dims      = scope == "all" ? {} : { dataset = scope }
          }
        }
      } if source == "agent" && local.slos[name].sli.type == "ratio"
    ]...),
    merge([
      for name, source in local.slo_source : {
        for scope in local.slo_scopes[name] : "${name}/${scope}" => {
          slo   = name
          scope = scope
          mode  = "good"
          parts = [{
            namespace = var.metrics_namespace
            metric    = "${local.slos[name].sli.metric}_bucket"
            dims      = merge(scope == "all" ? {} : { dataset = scope }, { le = local.le_label[name] })
          }]
          total = {
            namespace = var.metrics_namespace
            metric    = "${local.slos[name].sli.metric}_count"
            dims      = scope == "all" ? {} : { dataset = scope }
          }
        }
      } if source == "agent" && local.slos[name].sli.type == "latency"
    ]...),
  )

  burn_alarms = merge([
    for key, scope in local.burn_scopes : merge([
      for rule, r in local.burn_rules : {
        for role, window in { long = r.long, short = r.short } : "${key}/${rule}/${role}" => merge(scope, {
          rule      = rule
          window    = window
          threshold = r.factor * (100 - local.slos[scope.slo].objective) / 100
          name      = "${var.name_prefix}-slo-${scope.slo}-${scope.scope}-${rule}-${local.window_labels[tostring(window)]}"
        })
      }
    ]...)
  ]...)

  burn_composites = merge([
    for key, scope in local.burn_scopes : {
      for rule, r in local.burn_rules : "${key}/${rule}" => {
        slo      = scope.slo
        scope    = scope.scope
        rule     = rule
        severity = r.severity
        factor   = r.factor
        long     = "${key}/${rule}/long"
        short    = "${key}/${rule}/short"
      }
    }
  ]...)

  latency_alarms = merge([
    for name, source in local.slo_source : {
      for window in [3600, 300] : "${name}/${window}" => {
        slo       = name
        window    = window
        statistic = "p${local.slos[name].objective}"
        threshold = local.slos[name].sli.threshold
      }
    } if source == "alb-latency"
  ]...)

  # What the CloudWatch agent publishes: only the series the alarms read, to keep the number of
  # custom metrics (each billed monthly) small.
  agent_metric_declarations = concat(
    flatten([
      for name, source in local.slo_source : [
        {
          source_labels    = ["job"]
          label_matcher    = "^slipstream$"
          dimensions       = [contains(try(local.slos[name].group_by, []), "dataset") ? ["dataset"] : []]
          metric_selectors = ["^${local.slos[name].sli.metric}$"]
        },
        {
          source_labels    = ["job"]
          label_matcher    = "^slipstream$"
          dimensions       = [concat(contains(try(local.slos[name].group_by, []), "dataset") ? ["dataset"] : [], [keys(local.slos[name].sli.bad)[0]])]
          metric_selectors = ["^${local.slos[name].sli.metric}$"]
        },
      ] if source == "agent" && local.slos[name].sli.type == "ratio"
    ]),
    flatten([
      for name, source in local.slo_source : [
        {
          source_labels    = ["job", "le"]
          label_matcher    = "^slipstream;${replace(local.le_label[name], ".", "\\.")}$"
          dimensions       = [concat(contains(try(local.slos[name].group_by, []), "dataset") ? ["dataset"] : [], ["le"])]
          metric_selectors = ["^${local.slos[name].sli.metric}_bucket$"]
        },
        {
          source_labels    = ["job"]
          label_matcher    = "^slipstream$"
          dimensions       = [contains(try(local.slos[name].group_by, []), "dataset") ? ["dataset"] : []]
          metric_selectors = ["^${local.slos[name].sli.metric}_count$"]
        },
      ] if source == "agent" && local.slos[name].sli.type == "latency"
    ]),
    [{
      source_labels    = ["job"]
      label_matcher    = "^slipstream$"
      dimensions       = [["component"]]
      metric_selectors = ["^slipstream_backend_up$"]
    }],
  )

}
