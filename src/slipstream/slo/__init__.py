"""Service level objectives as code: the spec in observability/slo/slos.yaml and what it generates."""
