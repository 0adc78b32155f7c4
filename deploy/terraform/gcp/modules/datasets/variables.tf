variable "datasets" {
  description = "The `datasets` list of a Slipstream datasets file (yamldecode of the file, `.datasets`)."
  type = list(object({
    name        = string
    description = optional(string, "")
    key         = optional(string, "id")
    event_time  = string
    retention   = optional(string, "forever")
    fields = list(object({
      name        = string
      type        = string
      required    = optional(bool, false)
      description = optional(string, "")
      values      = optional(list(string))
    }))
  }))

  validation {
    condition = alltrue(flatten([
      for ds in var.datasets : [
        for f in ds.fields : contains(["string", "enum", "int", "float", "bool", "timestamp", "json"], f.type)
      ]
    ]))
    error_message = "Every field type must be one of string, enum, int, float, bool, timestamp, json."
  }

  validation {
    condition = alltrue([
      for ds in var.datasets : ds.retention == null || contains(["", "none", "forever"], lower(trimspace(ds.retention)))
      || can(regex("^[0-9]+\\s*[smhdw]$", trimspace(ds.retention)))
    ])
    error_message = "A retention looks like 90d, 12h, 4w or forever."
  }

  validation {
    condition = alltrue([
      for ds in var.datasets : can(regex("^[a-z][a-z0-9_]*$", ds.name))
      && contains([for f in ds.fields : f.name if f.type == "string"], ds.key)
      && contains([for f in ds.fields : f.name if f.type == "timestamp"], ds.event_time)
    ])
    error_message = "Dataset names are lower case letters, digits and _; the key must be a string field and event_time a timestamp field."
  }
}
