"""The Google Cloud Terraform (deploy/terraform/gcp): format, parse, wiring, and the pure modules.

Provider downloads are impossible here, so `terraform validate` skips. What runs offline:
`terraform fmt`; every .tf parsed with python-hcl2 and its wiring asserted; and the two pure
modules (`modules/datasets`, `modules/slo-alerts`, no provider) evaluated with
`terraform apply` on a throwaway root, their output compared with Slipstream's own Python
(the BigQuery store's schema code, the datasets loader) and with observability/slo/slos.yaml.
The variables' validation blocks run the same way (variables.tf alone needs no provider).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.terraform import assert_validation, init_or_skip, parse, run_terraform, terraform
from tests.tools import ROOT

GCP = ROOT / "deploy" / "terraform" / "gcp"
MODULE = GCP / "modules" / "slipstream"
DATASETS_MODULE = GCP / "modules" / "datasets"
SLO_MODULE = GCP / "modules" / "slo-alerts"
EXAMPLE = GCP / "examples" / "production"
SLO_SPEC = ROOT / "observability" / "slo" / "slos.yaml"
FLIGHTS = ROOT / "src" / "slipstream" / "datasets" / "flights.yaml"
CHECKOV_BASELINE = ROOT / "deploy" / "checks" / "checkov" / "terraform-gcp.yaml"
TF_FILES = sorted(GCP.rglob("*.tf"))
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}

# A dataset using every field type, the key not named id, and a retention in hours.
ALL_TYPES = {
    "name": "sensors",
    "key": "ref",
    "event_time": "at",
    "retention": "12h",
    "fields": [
        {"name": "ref", "type": "string", "description": "Reading id."},
        {"name": "at", "type": "timestamp", "required": True},
        {"name": "reading", "type": "float"},
        {"name": "ok", "type": "bool"},
        {"name": "payload", "type": "json", "description": "Raw payload."},
        {"name": "kind", "type": "enum", "values": ["a", "b"], "required": True},
        {"name": "count", "type": "int"},
        {"name": "site", "type": "string"},
    ],
}
KEPT_FOREVER = {
    "name": "audit",
    "event_time": "ts",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "ts", "type": "timestamp", "required": True},
    ],
}


def datasets_under_test() -> list[dict[str, Any]]:
    """The packaged flights dataset and the two above."""
    flights: list[dict[str, Any]] = yaml.safe_load(FLIGHTS.read_text(encoding="utf-8"))["datasets"]
    return [*flights, ALL_TYPES, KEPT_FOREVER]


# --- helpers: HCL as python-hcl2 gives it, with its quoting and markers taken off -----------------


def parse_dir(folder: Path) -> dict[str, list[Any]]:
    """Every top-level section (resource, variable, …) of the .tf files of one folder, merged."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for section, items in parse(path).items():
            merged.setdefault(section, []).extend(items)
    return merged


def resources(parsed: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in parsed.get("resource", []):
        for name, body in item.get(kind, {}).items():
            found[name] = body
    return found


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` (python-hcl2 gives blocks as lists)."""
    blocks = body.get(name)
    assert isinstance(blocks, list), f"no {name} block in {body}"
    assert len(blocks) == 1, f"expected one {name} block in {body}"
    only: dict[str, Any] = blocks[0]
    return only


def all_blocks(value: Any, name: str) -> Iterator[dict[str, Any]]:
    """Every block called `name`, at any depth (dynamic blocks' content included)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == name and isinstance(inner, list):
                yield from (b for b in inner if isinstance(b, dict))
            yield from all_blocks(inner, name)
    elif isinstance(value, list):
        for inner in value:
            yield from all_blocks(inner, name)


@pytest.fixture(scope="module")
def module() -> dict[str, list[Any]]:
    return parse_dir(MODULE)


def evaluate(binary: str, folder: Path, module_dir: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """Apply a root that only calls a provider-less module, and return its outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    arguments = "\n".join(f'  {k} = jsondecode(file("{k}.json"))' for k in inputs)
    for key, value in inputs.items():
        (folder / f"{key}.json").write_text(json.dumps(value), encoding="utf-8")
    (folder / "main.tf").write_text(
        f'module "m" {{\n  source = "{module_dir}"\n{arguments}\n}}\n'
        'output "all" {\n  value = module.m\n}\n',
        encoding="utf-8",
    )
    for args in (["init", "-backend=false"], ["apply", "-auto-approve", "-lock=false"]):
        done = run_terraform(binary, args, folder)
        assert done.returncode == 0, f"terraform {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    done = run_terraform(binary, ["output", "-json", "all"], folder)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- format and parse ----------------------------------------------------------------------------


def test_terraform_fmt_is_clean() -> None:
    binary = terraform()
    done = run_terraform(binary, ["fmt", "-check", "-recursive", "-diff", str(GCP)], ROOT)
    assert done.returncode == 0, f"terraform fmt would change:\n{done.stdout}{done.stderr}"


def test_the_expected_files_exist() -> None:
    for name in (
        "pubsub.tf",
        "run.tf",
        "bigquery.tf",
        "iam.tf",
        "secrets.tf",
        "monitoring.tf",
        "registry.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
    ):
        assert (MODULE / name).is_file(), name
    assert (EXAMPLE / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=[str(p.relative_to(GCP)) for p in TF_FILES])
def test_every_tf_file_parses(path: Path) -> None:
    assert parse(path), f"{path} is empty"


def test_every_variable_has_a_description_and_a_type() -> None:
    folders = sorted({p.parent for p in TF_FILES})
    seen = 0
    for folder in folders:
        for item in parse_dir(folder).get("variable", []):
            for name, body in item.items():
                seen += 1
                where = f"{folder.relative_to(GCP)}: variable {name}"
                assert str(body.get("description", "")).strip(), f"{where} has no description"
                assert "type" in body, f"{where} has no type"
    assert seen > 20


def test_validations_guard_the_inputs_the_brief_names(module: dict[str, list[Any]]) -> None:
    variables = {name: body for item in module["variable"] for name, body in item.items()}
    for name in ("project_id", "region", "delivery", "store", "image"):
        assert variables[name].get("validation"), f"variable {name} has no validation"


def test_provider_is_google_6() -> None:
    for folder in (MODULE, EXAMPLE):
        providers = parse_dir(folder)["terraform"][0]["required_providers"][0]
        assert providers["google"]["version"] == "~> 6.0"


# --- Pub/Sub ------------------------------------------------------------------------------------


def test_push_subscription_targets_the_api_with_an_oidc_token(module: dict[str, list[Any]]) -> None:
    push = resources(module, "google_pubsub_subscription")["push"]
    config = block(push, "push_config")
    endpoint = config["push_endpoint"]
    assert "google_cloud_run_v2_service.api.uri" in endpoint
    assert endpoint.endswith("/push/pubsub/${each.key}")
    oidc = block(config, "oidc_token")
    assert "google_service_account.pusher" in oidc["service_account_email"]
    assert oidc["audience"] == "${local.push_audience}"
    assert "google_pubsub_topic.ingress" in push["topic"]


@pytest.mark.parametrize("name", ["broker", "push"])
def test_subscriptions_dead_letter_and_back_off(module: dict[str, list[Any]], name: str) -> None:
    subscription = resources(module, "google_pubsub_subscription")[name]
    policy = block(subscription, "dead_letter_policy")
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter[each.key].id}"
    assert policy["max_delivery_attempts"] == "${var.max_deliveries}"
    retry = block(subscription, "retry_policy")
    assert retry["minimum_backoff"]
    assert retry["maximum_backoff"]
    assert "ack_deadline_seconds" in subscription
    assert "message_retention_duration" in subscription


def test_dead_letters_are_kept_by_a_subscription(module: dict[str, list[Any]]) -> None:
    keeper = resources(module, "google_pubsub_subscription")["dead_letter"]
    assert keeper["topic"] == "${google_pubsub_topic.dead_letter[each.key].id}"
    assert keeper["message_retention_duration"] == "2678400s"
    assert "push_config" not in keeper


def test_broker_resources_have_the_names_the_broker_expects(module: dict[str, list[Any]]) -> None:
    topics = resources(module, "google_pubsub_topic")
    subscriptions = resources(module, "google_pubsub_subscription")
    assert topics["broker"]["name"] == "${local.prefix}-${each.key}"
    assert topics["dead_letter"]["name"] == "${local.prefix}-${each.key}-dlq"
    assert subscriptions["broker"]["name"] == "${local.prefix}-${each.key}"
    assert subscriptions["dead_letter"]["name"] == "${local.prefix}-${each.key}-dlq"
    main = (MODULE / "main.tf").read_text(encoding="utf-8")
    assert 'broker_url = "pubsub://${var.project_id}?prefix=${local.prefix}"' in main


def test_pubsub_agent_can_dead_letter() -> None:
    iam = (MODULE / "iam.tf").read_text(encoding="utf-8")
    grants = {
        (m["kind"], m["res"], m["role"])
        for m in re.finditer(
            r'\{ kind = "(?P<kind>\w+)", res = "(?P<res>\w+)", ds = ds, '
            r'role = "(?P<role>[\w./]+)", who = "pubsub_agent" \}',
            iam,
        )
    }
    assert ("topic", "dead_letter", "roles/pubsub.publisher") in grants
    assert ("subscription", "broker", "roles/pubsub.subscriber") in grants
    assert ("subscription", "push", "roles/pubsub.subscriber") in grants
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in (MODULE / "main.tf").read_text(
        encoding="utf-8"
    )


# --- Cloud Run ----------------------------------------------------------------------------------


def test_api_service_probes_env_and_secrets(module: dict[str, list[Any]]) -> None:
    api = resources(module, "google_cloud_run_v2_service")["api"]
    template = block(api, "template")
    assert block(template, "scaling").keys() >= {"min_instance_count", "max_instance_count"}
    container = template["containers"][0]
    assert container["image"] == "${var.image}"
    assert block(block(container, "startup_probe"), "http_get")["path"] == "/readyz"
    assert block(block(container, "liveness_probe"), "http_get")["path"] == "/healthz"
    limits = block(container, "resources")["limits"]
    assert limits == {"cpu": "${var.api_cpu}", "memory": "${var.api_memory}"}
    secret_refs = list(all_blocks(container, "secret_key_ref"))
    assert secret_refs
    assert all(ref["version"] == "latest" for ref in secret_refs)
    run = (MODULE / "run.tf").read_text(encoding="utf-8")
    for setting in ("SLIPSTREAM_BROKER_URL", "SLIPSTREAM_STORE_URL", "SLIPSTREAM_API_KEYS"):
        assert setting in run
    assert 'SLIPSTREAM_CREATE_RESOURCES = "false"' in run


def test_worker_service_only_with_pull_delivery(module: dict[str, list[Any]]) -> None:
    worker = resources(module, "google_cloud_run_v2_service")["worker"]
    assert worker["count"] == "${local.push ? 0 : 1}"
    assert 'push = var.delivery == "push"' in (MODULE / "main.tf").read_text(encoding="utf-8")
    assert worker["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"


def test_pusher_may_invoke_the_api_only(module: dict[str, list[Any]]) -> None:
    for kind, items in (
        (kind, resources(module, kind))
        for kind in {k for item in module["resource"] for k in item}
        if kind.endswith("_iam_member")
    ):
        for name, body in items.items():
            if "google_service_account.pusher" in str(body.get("member", "")):
                assert kind == "google_cloud_run_v2_service_iam_member", f"{kind}.{name}"
                assert body["name"] == "${google_cloud_run_v2_service.api.name}"
                assert body["role"] == "roles/run.invoker"


# --- IAM ------------------------------------------------------------------------------------------


def test_no_primitive_roles_or_wildcards() -> None:
    for path in TF_FILES:
        parsed = parse(path)
        for item in parsed.get("resource", []):
            for kind, named in item.items():
                if "_iam_" not in kind:
                    continue
                for name, body in named.items():
                    role, member = str(body.get("role", "")), str(body.get("member", ""))
                    where = f"{path.name}: {kind}.{name}"
                    assert role not in PRIMITIVE_ROLES, where
                    assert "*" not in role, where
                    assert "*" not in member, where
                    assert kind.endswith("_iam_member"), (
                        f"{where}: authoritative IAM would remove grants made elsewhere"
                    )
        text = path.read_text(encoding="utf-8")
        for role in re.findall(r'"(roles/[^"]*)"', text):
            assert role not in PRIMITIVE_ROLES, f"{path.name}: {role}"
            assert "*" not in role, f"{path.name}: {role}"


def test_bigquery_grants_are_on_the_one_dataset(module: dict[str, list[Any]]) -> None:
    editor = resources(module, "google_bigquery_dataset_iam_member")["data_editor"]
    assert editor["role"] == "roles/bigquery.dataEditor"
    assert editor["dataset_id"] == "${google_bigquery_dataset.this[0].dataset_id}"
    project_roles = {b["role"] for b in resources(module, "google_project_iam_member").values()}
    assert project_roles == {"roles/bigquery.jobUser", "roles/monitoring.metricWriter"}


def test_secret_access_is_per_secret(module: dict[str, list[Any]]) -> None:
    grants = resources(module, "google_secret_manager_secret_iam_member")
    assert grants
    for body in grants.values():
        assert body["role"] == "roles/secretmanager.secretAccessor"
        assert body["secret_id"] == "${each.value}"
    assert not resources(module, "google_secret_manager_secret_version").keys() - {"datasets"}, (
        "only the (non-secret) datasets file may have a version made by Terraform"
    )


# --- BigQuery and Cloud SQL -----------------------------------------------------------------------


def test_tables_are_partitioned_by_event_time_per_day(module: dict[str, list[Any]]) -> None:
    events = resources(module, "google_bigquery_table")["events"]
    partitioning = block(events, "time_partitioning")
    assert partitioning["type"] == "DAY"
    assert partitioning["field"] == "${each.value.partition_field}"
    assert "expiration_ms" in partitioning
    assert events["clustering"] == "${each.value.clustering}"
    datasets_main = (DATASETS_MODULE / "main.tf").read_text(encoding="utf-8")
    assert "partition_field = ds.event_time" in datasets_main


def test_cloud_sql_is_private_backed_up_and_protected(module: dict[str, list[Any]]) -> None:
    instance = resources(module, "google_sql_database_instance")["postgres"]
    assert instance["count"] == '${var.store == "postgresql" ? 1 : 0}'
    assert instance["deletion_protection"] == "${var.deletion_protection}"
    settings = block(instance, "settings")
    ip = block(settings, "ip_configuration")
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"] == "${var.network}"
    backups = block(settings, "backup_configuration")
    assert backups["enabled"] is True
    assert backups["point_in_time_recovery_enabled"] is True


# --- monitoring -----------------------------------------------------------------------------------


def test_monitoring_is_driven_by_the_slo_module(module: dict[str, list[Any]]) -> None:
    policies = resources(module, "google_monitoring_alert_policy")
    assert policies["burn_rate"]["for_each"] == "${module.slo.burn_rate_policies}"
    assert policies["spec_alert"]["for_each"] == "${module.slo.extra_alerts}"
    for name in ("burn_rate", "spec_alert"):
        condition = block(
            block(policies[name], "conditions"), "condition_prometheus_query_language"
        )
        assert condition["query"] == "${each.value.query}"
    assert resources(module, "google_monitoring_slo")["spec"]["for_each"] == "${module.slo.slos}"
    uptime = resources(module, "google_monitoring_uptime_check_config")["healthz"]
    assert block(uptime, "http_check")["path"] == "/healthz"


def test_example_root_reads_the_real_files() -> None:
    text = (EXAMPLE / "main.tf").read_text(encoding="utf-8")
    root = re.search(r'repo_root = "\$\{path.root\}/([./]+)"', text)
    assert root, "the example root names the repository root relative to itself"
    repo_root = (EXAMPLE / root.group(1)).resolve()
    assert repo_root == ROOT.resolve()
    assert '"${local.repo_root}/observability/slo/slos.yaml"' in text
    assert '"${local.repo_root}/src/slipstream/datasets/flights.yaml"' in text
    backend = parse_dir(EXAMPLE)["terraform"][0]["backend"][0]["gcs"]
    assert backend["bucket"]
    assert backend["prefix"]
    call = parse_dir(EXAMPLE)["module"][0]["slipstream"]
    assert (EXAMPLE / call["source"]).resolve() == MODULE.resolve()
    assert call["slo_spec"] == "${local.slo_spec}"


# --- the pure modules, evaluated offline ------------------------------------------------------------


@pytest.fixture(scope="module")
def slo_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    return evaluate(terraform(), tmp_path_factory.mktemp("slo"), SLO_MODULE, {"spec": spec})


@pytest.fixture(scope="module")
def dataset_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    inputs = {"datasets": datasets_under_test()}
    return evaluate(terraform(), tmp_path_factory.mktemp("datasets"), DATASETS_MODULE, inputs)


def test_alert_policies_cover_every_slo(slo_outputs: dict[str, Any]) -> None:
    spec = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    names = [slo["name"] for slo in spec["slos"]]
    policies = slo_outputs["burn_rate_policies"]
    assert set(policies) == {f"{n}-{s}" for n in names for s in ("page", "ticket")}
    assert set(slo_outputs["slos"]) == set(names)
    assert set(slo_outputs["extra_alerts"]) == {a["name"] for a in spec.get("alerts", [])}


def test_alert_names_match_the_prometheus_rules(slo_outputs: dict[str, Any]) -> None:
    """The same names as the generated Prometheus alerts, so one runbook serves both."""
    from slipstream.slo.spec import load_spec

    spec = load_spec(SLO_SPEC)
    for slo in spec.slos:
        fast, slow = slo.alert_names
        policies = slo_outputs["burn_rate_policies"]
        assert policies[f"{slo.name}-page"]["alert_name"] == fast
        assert policies[f"{slo.name}-ticket"]["alert_name"] == slow
        assert f"/{fast}.md" in policies[f"{slo.name}-page"]["documentation"]


def test_burn_rate_queries_follow_the_multi_window_rule(slo_outputs: dict[str, Any]) -> None:
    spec = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    expected: dict[str, list[tuple[float, str, str]]] = {
        "page": [(14.4, "1h", "5m"), (6, "6h", "30m")],
        "ticket": [(3, "1d", "2h"), (1, "3d", "6h")],
    }
    for slo in spec["slos"]:
        budget = (100 - slo["objective"]) / 100
        for severity, windows in expected.items():
            query = slo_outputs["burn_rate_policies"][f"{slo['name']}-{severity}"]["query"]
            clauses = query.split(" or ")
            assert len(clauses) == len(windows), query
            for clause, (factor, long, short) in zip(clauses, windows, strict=True):
                assert f"[{long}]" in clause, clause
                assert f"[{short}]" in clause, clause
                thresholds = [float(t) for t in re.findall(r"\) > ([0-9.e-]+)", clause)]
                assert thresholds == [pytest.approx(factor * budget)] * 2, clause
                assert slo["sli"]["metric"] in clause
                if slo.get("group_by"):
                    assert f"sum by ({', '.join(slo['group_by'])})" in clause


def test_sli_queries_select_as_the_spec_says(slo_outputs: dict[str, Any]) -> None:
    policies = slo_outputs["burn_rate_policies"]
    ingest = policies["ingest-acceptance-page"]["query"]
    # The spec's regex (with its escaped braces) survives as a PromQL string literal.
    assert 'route=~"/v1/datasets/\\\\{ds\\\\}/events|/push/.*"' in ingest
    assert 'code=~"5.."' in ingest
    assert 'method=~"POST"' in ingest
    freshness = policies["freshness-page"]["query"]
    assert 'slipstream_freshness_seconds_bucket{le=~"10(\\\\.0)?"}' in freshness
    assert "slipstream_freshness_seconds_count[" in freshness
    latency = policies["read-latency-page"]["query"]
    assert 'le=~"0\\\\.1"' in latency


def test_extra_alerts_keep_their_query_and_duration(slo_outputs: dict[str, Any]) -> None:
    spec = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    for alert in spec.get("alerts", []):
        made = slo_outputs["extra_alerts"][alert["name"]]
        assert made["query"] == alert["expr"].strip()
        seconds = int(alert["for"][:-1]) * units[alert["for"][-1]]
        assert made["duration"] == f"{seconds}s"
        assert "{{" not in made["documentation"]


def test_cloud_monitoring_slos_match_the_spec(slo_outputs: dict[str, Any]) -> None:
    spec = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    for slo in spec["slos"]:
        made = slo_outputs["slos"][slo["name"]]
        assert made["goal"] == pytest.approx(slo["objective"] / 100)
        assert made["rolling_period_days"] == int(spec["period"].rstrip("d"))
        kind = "counter" if slo["sli"]["type"] == "ratio" else "histogram"
        assert f"prometheus.googleapis.com/{slo['sli']['metric']}/{kind}" in made["total_filter"]


def test_tables_match_the_bigquery_store(dataset_outputs: dict[str, Any]) -> None:
    pytest.importorskip("google.cloud.bigquery", reason="the gcp extra is not installed")
    from slipstream.datasets import parse_catalog
    from slipstream.stores import bigquery_schema

    catalog = parse_catalog(
        yaml.safe_dump({"datasets": datasets_under_test()}),
        "test",
    )
    tables = dataset_outputs["tables"]
    assert set(tables) == set(catalog.names)
    for dataset in catalog:
        table = tables[dataset.name]
        # An empty description is no description to BigQuery; the module leaves it out so the
        # table shows no diff against what the API answers.
        expected = [
            {k: v for k, v in field.to_api_repr().items() if v not in (None, "")}
            for field in bigquery_schema.table_schema(dataset)
        ]
        assert table["columns"] == expected, dataset.name
        assert table["clustering"] == bigquery_schema.cluster_fields(dataset)
        assert table["partition_field"] == dataset.event_time
        if dataset.retention is None:
            assert table["partition_expiration_ms"] is None
        else:
            assert table["partition_expiration_ms"] == (
                dataset.retention + timedelta(days=1)
            ) / timedelta(milliseconds=1)
        assert table["quarantine_table"] == bigquery_schema.quarantine_name(dataset)
        assert table["quarantine_columns"] == [
            f.to_api_repr() for f in bigquery_schema.quarantine_schema()
        ]
        assert table["description"] == (dataset.description or None)
    assert dataset_outputs["bq_types"] == dict(bigquery_schema.BQ_TYPES)


def test_mounted_datasets_file_loads_as_the_same_catalog(dataset_outputs: dict[str, Any]) -> None:
    from slipstream.datasets import parse_catalog

    original = parse_catalog(
        yaml.safe_dump({"datasets": datasets_under_test()}),
        "test",
    )
    mounted = parse_catalog(dataset_outputs["datasets_file"], "mounted")
    assert mounted.datasets == original.datasets


# --- validation blocks, run for real (variables.tf needs no provider) ----------------------------

GOOD = {
    "project_id": "acme-prod-1",
    "region": "europe-west1",
    "image": "europe-west1-docker.pkg.dev/acme-prod-1/slipstream/slipstream:1.0.0",
    "datasets": [KEPT_FOREVER],
    "slo_spec": {},
}


@pytest.fixture(scope="module")
def variables_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    binary = terraform()
    folder = tmp_path_factory.mktemp("variables")
    shutil.copy(MODULE / "variables.tf", folder / "variables.tf")
    done = run_terraform(binary, ["init", "-backend=false"], folder)
    assert done.returncode == 0, done.stderr
    return binary, folder


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({}, None),
        ({"delivery": "pull", "store": "postgresql"}, None),
        ({"image": "europe-west1-docker.pkg.dev/p/r/slipstream@sha256:" + "a" * 64}, None),
        ({"image": "europe-west1-docker.pkg.dev/p/r/slipstream:latest"}, "image"),
        ({"image": "europe-west1-docker.pkg.dev/p/r/slipstream"}, "image"),
        ({"region": "europe-west1-b"}, "region"),
        ({"project_id": "Acme_Prod"}, "project_id"),
        ({"delivery": "stream"}, "delivery"),
        ({"store": "duckdb"}, "store"),
    ],
)
def test_variable_validation(
    variables_root: tuple[str, Path], changes: dict[str, Any], refused: str | None
) -> None:
    binary, folder = variables_root
    assert_validation(binary, folder, {**GOOD, **changes}, refused)


# --- validate (needs the provider) and the checkov baseline -----------------------------------------


def test_terraform_validate(tmp_path: Path) -> None:
    binary = terraform()
    copy = tmp_path / "gcp"
    shutil.copytree(GCP, copy, ignore=shutil.ignore_patterns(".terraform*"))
    root = copy / "examples" / "production"
    init_or_skip(binary, root, "hashicorp/google")
    done = run_terraform(binary, ["validate"], root)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_baseline_gives_a_reason_per_skip() -> None:
    skips = yaml.safe_load(CHECKOV_BASELINE.read_text(encoding="utf-8")) or {}
    assert isinstance(skips, dict)
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV2?_GCP_\d+", check), check
        assert isinstance(reason, str), check
        assert reason.strip(), check
        assert "\n" not in reason.strip(), check
