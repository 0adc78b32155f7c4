# What a parsed datasets file implies for the deployment: the BigQuery tables, computed the same
# way src/slipstream/stores/bigquery_schema.py computes them (table_schema, cluster_fields,
# new_table, new_quarantine_table), and the datasets file the containers read. Pure expressions,
# no provider: the tests evaluate this module offline and compare its output with the Python
# code's, so the two cannot drift apart.

locals {
  # Field type -> BigQuery column type (bigquery_schema.BQ_TYPES).
  bq_types = {
    string    = "STRING"
    enum      = "STRING"
    int       = "INT64"
    float     = "FLOAT64"
    bool      = "BOOL"
    timestamp = "TIMESTAMP"
    json      = "JSON"
  }

  # Field types a table may be clustered by (bigquery_schema._CLUSTERABLE); BigQuery allows four.
  clusterable        = ["string", "enum", "int", "bool"]
  max_cluster_fields = 4

  # Columns every table ends with (bigquery_schema._reserved_columns).
  reserved_columns = [
    { name = "extra", type = "JSON", mode = "NULLABLE", description = "Fields the dataset does not declare." },
    { name = "_received_at", type = "TIMESTAMP", mode = "NULLABLE", description = "When Slipstream received it." },
    { name = "_stored_at", type = "TIMESTAMP", mode = "NULLABLE", description = "When the write committed." },
  ]

  quarantine_columns = [
    { name = "id", type = "STRING", mode = "NULLABLE" },
    { name = "reason", type = "STRING", mode = "NULLABLE" },
    { name = "raw", type = "STRING", mode = "NULLABLE" },
    { name = "received_at", type = "TIMESTAMP", mode = "NULLABLE" },
  ]

  retention_units = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

  # The same list as a datasets file: JSON (which is YAML) without the null and empty
  # attributes Terraform's optional() adds, which the Slipstream loader would refuse.
  datasets_file = jsonencode({
    datasets = [
      for ds in var.datasets : merge(
        { for k, v in ds : k => v if k != "fields" && v != null && v != "" },
        { fields = [for f in ds.fields : { for k, v in f : k => v if v != null && v != "" }] },
      )
    ]
  })

  tables = {
    for ds in var.datasets : ds.name => {
      # Every column NULLABLE: the codec enforces `required`, and BigQuery can relax a mode but
      # never tighten it. An empty description is left out, as the client library does.
      columns = concat(
        [
          for f in ds.fields : merge(
            { name = f.name, type = local.bq_types[f.type], mode = "NULLABLE" },
            (f.description == null || f.description == "") ? {} : { description = f.description },
          )
        ],
        local.reserved_columns,
      )

      # The key first (GET by id has no time range), then enums, then the other clusterable
      # fields in declaration order; never the partition column.
      clustering = slice(
        local.cluster_candidates[ds.name],
        0,
        min(local.max_cluster_fields, length(local.cluster_candidates[ds.name])),
      )

      partition_field = ds.event_time
      description     = (ds.description == null || ds.description == "") ? null : ds.description

      # Partition expiration acts on the partition's date, so it is the retention plus one day:
      # a row is never dropped before it is older than the retention. null keeps rows forever.
      retention_seconds = local.retention_seconds[ds.name]
      partition_expiration_ms = (
        local.retention_seconds[ds.name] == null ? null : (local.retention_seconds[ds.name] + 86400) * 1000
      )

      quarantine_table       = "${ds.name}__quarantine"
      quarantine_columns     = local.quarantine_columns
      quarantine_clustering  = ["id"]
      quarantine_description = "Events of ${ds.name} that failed validation."
    }
  }

  cluster_candidates = {
    for ds in var.datasets : ds.name => concat(
      [ds.key],
      [for f in ds.fields : f.name if f.type == "enum" && f.name != ds.key && f.name != ds.event_time],
      [
        for f in ds.fields : f.name
        if contains(local.clusterable, f.type) && f.type != "enum" && f.name != ds.key && f.name != ds.event_time
      ],
    )
  }

  retention_seconds = {
    for ds in var.datasets : ds.name => (
      ds.retention == null || contains(["", "none", "forever"], lower(trimspace(ds.retention)))
      ? null
      : tonumber(regex("^([0-9]+)\\s*[smhdw]$", trimspace(ds.retention))[0])
      * local.retention_units[regex("([smhdw])$", trimspace(ds.retention))[0]]
    )
  }
}
