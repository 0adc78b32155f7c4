variable "spec" {
  description = "The parsed SLO spec (yamldecode of observability/slo/slos.yaml)."
  type = object({
    version          = optional(number, 1)
    service          = optional(string, "slipstream")
    period           = optional(string, "30d")
    runbook_base_url = optional(string, "")
    slos = list(object({
      name        = string
      description = optional(string, "")
      objective   = number
      sli = object({
        type      = string
        metric    = string
        selector  = optional(map(string), {})
        bad       = optional(map(string), {})
        threshold = optional(number)
      })
      group_by = optional(list(string), [])
      why      = optional(string, "")
    }))
    # Each alert: name, severity, for, summary, expr (all strings; `for` is a keyword in HCL,
    # so a map is the only way to take the spec's own field name).
    alerts = optional(list(map(string)), [])
  })

  validation {
    condition     = alltrue([for s in var.spec.slos : contains(["ratio", "latency"], s.sli.type)])
    error_message = "An SLI type is ratio or latency."
  }

  validation {
    condition     = alltrue([for s in var.spec.slos : s.objective > 0 && s.objective < 100])
    error_message = "An objective is a percentage strictly between 0 and 100."
  }

  validation {
    condition     = alltrue([for s in var.spec.slos : s.sli.type != "latency" || s.sli.threshold != null])
    error_message = "A latency SLI needs a threshold (seconds)."
  }

  validation {
    condition     = can(regex("^[0-9]+d$", var.spec.period))
    error_message = "The SLO period is a whole number of days, e.g. 30d."
  }
}

variable "burn_rate_windows" {
  description = "Multi-window burn-rate alerts per severity: each entry fires when the error budget burns faster than factor x over both the long and the short window."
  type = map(list(object({
    long   = string
    short  = string
    factor = number
  })))
  default = {
    page = [
      { long = "1h", short = "5m", factor = 14.4 },
      { long = "6h", short = "30m", factor = 6 },
    ]
    ticket = [
      { long = "1d", short = "2h", factor = 3 },
      { long = "3d", short = "6h", factor = 1 },
    ]
  }
}
