"""The AWS Terraform (deploy/terraform/aws): format, parse, wiring, and the pure SLO module.

Provider downloads are impossible here, so `terraform validate` skips. What runs offline:
`terraform fmt`; every .tf parsed with python-hcl2 and its wiring asserted (the broker's
SNS -> SQS layout, the database, the load balancer, the tasks, IAM); the provider-free
`modules/slo-alarms` evaluated with `terraform apply` on a throwaway root against
observability/slo/slos.yaml; and the variables' validation blocks (variables.tf alone needs no
provider).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.terraform import assert_validation, init_or_skip, parse, run_terraform, terraform
from tests.tools import ROOT

AWS = ROOT / "deploy" / "terraform" / "aws"
MODULE = AWS / "modules" / "slipstream"
SLO_MODULE = AWS / "modules" / "slo-alarms"
EXAMPLE = AWS / "examples" / "production"
SLO_SPEC = ROOT / "observability" / "slo" / "slos.yaml"
DOCS = ROOT / "docs" / "deploy-aws.md"
CHECKOV_BASELINE = ROOT / "deploy" / "checks" / "checkov" / "terraform-aws.yaml"
TF_FILES = sorted(AWS.rglob("*.tf"))

# Statements whose resource may be "*", each because AWS accepts nothing else there; every one is
# explained in docs/deploy-aws.md (IAM).
STAR_RESOURCE_ALLOWED = {
    "KeyAdministration",  # key policy: "*" means this key
    "CloudWatchAlarmsUseKey",  # key policy
    "CloudWatchLogsUseKey",  # key policy
    "EcrAuthorizationToken",  # ecr:GetAuthorizationToken has no resource
    "SubscriptionAttributes",  # sns:GetSubscriptionAttributes has no resource-level permissions
}
# The multi-window burn-rate rules: factor => (long window, short window), seconds.
BURN_RULES = {14.4: (3600, 300), 6: (21600, 1800), 3: (86400, 7200), 1: (259200, 21600)}


# --- helpers: HCL as python-hcl2 gives it, with its quoting and markers taken off -----------------


def blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every `kind` block (resource, data) of the folder's .tf files, as "TYPE.NAME" => body."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in parse(path).get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found[f"{rtype}.{name}"] = body
    return found


def locals_of(folder: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in parse(path).get("locals", []):
            merged.update(entry)
    return merged


def one(value: Any) -> Any:
    """A nested block as hcl2 gives it (a list of one) or the value itself."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def statements(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, body in blocks(folder, "data").items():
        if key.startswith("aws_iam_policy_document."):
            for statement in body.get("statement", []):
                yield key, statement
            for dynamic in body.get("dynamic", []):
                for content in one(dynamic.get("statement", {})).get("content", []):
                    yield key, content


@pytest.fixture(scope="module")
def module() -> dict[str, dict[str, Any]]:
    return blocks(MODULE, "resource")


@pytest.fixture(scope="module")
def data() -> dict[str, dict[str, Any]]:
    return blocks(MODULE, "data")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SLO_SPEC.read_text(encoding="utf-8"))
    return loaded


# --- format and parse ---------------------------------------------------------------------------------


def test_terraform_fmt_is_clean() -> None:
    done = run_terraform(terraform(), ["fmt", "-check", "-recursive", "-list=true", str(AWS)], ROOT)
    assert done.returncode == 0, f"not formatted: {done.stdout}{done.stderr}"


def test_the_expected_files_exist() -> None:
    for name in (
        "messaging.tf",
        "database.tf",
        "ecs.tf",
        "alb.tf",
        "iam.tf",
        "secrets.tf",
        "alarms.tf",
        "network.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
    ):
        assert (MODULE / name).is_file(), name
    for name in (
        "versions.tf",
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "terraform.tfvars.example",
    ):
        assert (EXAMPLE / name).is_file(), name


@pytest.mark.parametrize("path", TF_FILES, ids=[str(p.relative_to(AWS)) for p in TF_FILES])
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("folder", [MODULE, SLO_MODULE, EXAMPLE], ids=lambda p: p.name)
def test_every_variable_has_a_description_and_a_type(folder: Path) -> None:
    variables = {k: v for e in parse(folder / "variables.tf")["variable"] for k, v in e.items()}
    assert variables
    for name, body in variables.items():
        assert body.get("description", "").strip(), f"{name}: no description"
        assert body.get("type"), f"{name}: no type"


def test_inputs_the_brief_names_are_validated() -> None:
    variables = {k: v for e in parse(MODULE / "variables.tf")["variable"] for k, v in e.items()}
    for name in (
        "region",
        "image",
        "alb_ingress_cidrs",
        "name_prefix",
        "datasets",
        "certificate_arn",
    ):
        assert variables[name].get("validation"), f"{name} has no validation"


def test_provider_is_aws_5_and_state_is_encrypted_and_locked() -> None:
    for folder in (MODULE, EXAMPLE):
        settings = one(parse(folder / "versions.tf")["terraform"])
        aws = one(settings["required_providers"])["aws"]
        assert aws["source"] == "hashicorp/aws"
        assert aws["version"].startswith("~> 5.")
    settings = one(parse(EXAMPLE / "versions.tf")["terraform"])
    backend = one(settings["backend"])["s3"]
    assert backend["encrypt"] is True
    assert backend["use_lockfile"] is True, "S3-native locking (Terraform >= 1.10)"
    assert "dynamodb_table" not in backend
    assert "1.10" in settings["required_version"]


# --- the broker's SNS -> SQS layout (docs/backends/sqs.md) -----------------------------------------


def test_every_queue_redrives_to_its_own_dead_letter_queue(
    module: dict[str, dict[str, Any]],
) -> None:
    queues = {k: v for k, v in module.items() if k.startswith("aws_sqs_queue.")}
    assert set(queues) == {"aws_sqs_queue.dataset", "aws_sqs_queue.dlq"}
    queue = queues["aws_sqs_queue.dataset"]
    policy = queue["redrive_policy"]
    assert "deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn" in policy
    assert "maxReceiveCount = var.max_deliveries" in policy
    assert queue["for_each"] == queues["aws_sqs_queue.dlq"]["for_each"] == "${local.datasets}"
    # The visibility timeout is the worker's lease, from the same variable the tasks get.
    assert queue["visibility_timeout_seconds"] == "${var.lease_seconds}"
    for body in queues.values():
        assert body["receive_wait_time_seconds"] == 20
        assert body["sqs_managed_sse_enabled"] is True
    assert (
        queues["aws_sqs_queue.dlq"]["message_retention_seconds"] == "${local.dlq_retention_seconds}"
    )
    assert locals_of(MODULE)["dlq_retention_seconds"] == 1209600
    allow = module["aws_sqs_queue_redrive_allow_policy.dlq"]["redrive_allow_policy"]
    assert "aws_sqs_queue.dataset[each.key].arn" in allow


def test_queue_retention_stays_below_the_dead_letter_retention() -> None:
    variables = {k: v for e in parse(MODULE / "variables.tf")["variable"] for k, v in e.items()}
    retention = variables["queue_retention_seconds"]
    assert retention["default"] < 1209600
    assert "< 1209600" in one(retention["validation"])["condition"]


def test_queue_policy_admits_only_the_datasets_topic(
    module: dict[str, dict[str, Any]], data: dict[str, dict[str, Any]]
) -> None:
    document = data["aws_iam_policy_document.queue"]
    (statement,) = document["statement"]
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sqs:SendMessage"]
    principal = one(statement["principals"])
    assert principal["type"] == "Service"
    assert principal["identifiers"] == ["sns.amazonaws.com"]
    assert statement["resources"] == ["${aws_sqs_queue.dataset[each.key].arn}"]
    condition = one(statement["condition"])
    assert condition["test"] == "ArnEquals"
    assert condition["variable"] == "aws:SourceArn"
    assert condition["values"] == ["${aws_sns_topic.dataset[each.key].arn}"]
    policy = module["aws_sqs_queue_policy.dataset"]
    assert policy["policy"] == "${data.aws_iam_policy_document.queue[each.key].json}"
    assert policy["queue_url"] == "${aws_sqs_queue.dataset[each.key].id}"


def test_subscription_delivers_raw_messages(module: dict[str, dict[str, Any]]) -> None:
    subscription = module["aws_sns_topic_subscription.dataset"]
    assert subscription["protocol"] == "sqs"
    assert subscription["raw_message_delivery"] is True, "the broker reads raw messages"
    assert subscription["topic_arn"] == "${aws_sns_topic.dataset[each.key].arn}"
    assert subscription["endpoint"] == "${aws_sqs_queue.dataset[each.key].arn}"


def test_topics_are_kms_encrypted(module: dict[str, dict[str, Any]]) -> None:
    for key in ("aws_sns_topic.dataset", "aws_sns_topic.alarms"):
        assert module[key]["kms_master_key_id"] == "${aws_kms_key.main.arn}"
    assert module["aws_kms_key.main"]["enable_key_rotation"] is True


def test_names_and_settings_match_what_the_broker_expects() -> None:
    values = locals_of(MODULE)
    assert values["queue_names"] == '${{for d in var.datasets : d => "${var.name_prefix}-${d}"}}'
    assert values["dlq_names"] == '${{for d in var.datasets : d => "${var.name_prefix}-${d}-dlq"}}'
    assert values["topic_names"] == values["queue_names"]
    environment = one(values["base_environment"])
    text = json.dumps(environment)
    assert 'SLIPSTREAM_BROKER_URL = \\"sqs://${var.region}?prefix=${var.name_prefix}\\"' in text
    assert 'SLIPSTREAM_CREATE_RESOURCES = \\"false\\"' in text
    assert "SLIPSTREAM_LEASE_SECONDS = tostring(var.lease_seconds)" in text
    assert "SLIPSTREAM_MAX_DELIVERIES = tostring(var.max_deliveries)" in text
    assert "sslmode=require" in json.dumps(values["store_url"])


# --- database -------------------------------------------------------------------------------------------


def test_database_is_private_encrypted_backed_up_and_protected(
    module: dict[str, dict[str, Any]],
) -> None:
    db = module["aws_db_instance.main"]
    assert db["publicly_accessible"] is False
    assert db["storage_encrypted"] is True
    assert db["kms_key_id"] == "${aws_kms_key.main.arn}"
    assert db["manage_master_user_password"] is True
    assert "password" not in db
    assert db["deletion_protection"] == "${var.db_deletion_protection}"
    assert db["backup_retention_period"] == "${var.db_backup_retention_days}"
    assert db["multi_az"] == "${var.db_multi_az}"
    assert db["skip_final_snapshot"] is False
    assert db["db_subnet_group_name"] == "${aws_db_subnet_group.main.name}"
    assert module["aws_db_subnet_group.main"]["subnet_ids"] == "${var.database_subnet_ids}"
    assert db["vpc_security_group_ids"] == ["${aws_security_group.db.id}"]
    assert "var.db_performance_insights" in db["performance_insights_enabled"]


def test_database_admits_5432_from_the_tasks_only(module: dict[str, dict[str, Any]]) -> None:
    into_db = [
        body
        for key, body in module.items()
        if key.startswith("aws_vpc_security_group_ingress_rule.")
        and body["security_group_id"] == "${aws_security_group.db.id}"
    ]
    assert len(into_db) == 1
    (rule,) = into_db
    assert rule["from_port"] == rule["to_port"] == 5432
    assert rule["referenced_security_group_id"] == "${aws_security_group.tasks.id}"
    assert "cidr_ipv4" not in rule


# --- load balancer and tasks --------------------------------------------------------------------------


def test_https_listener_uses_tls13_policy_and_http_redirects(
    module: dict[str, dict[str, Any]],
) -> None:
    https = module["aws_lb_listener.https"]
    assert https["port"] == 443
    assert https["protocol"] == "HTTPS"
    assert https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["certificate_arn"] == "${var.certificate_arn}"
    http = module["aws_lb_listener.http"]
    action = one(http["default_action"])
    assert action["type"] == "redirect"
    redirect = one(action["redirect"])
    assert (redirect["protocol"], redirect["port"], redirect["status_code"]) == (
        "HTTPS",
        "443",
        "HTTP_301",
    )
    lb = module["aws_lb.api"]
    assert lb["drop_invalid_header_fields"] is True
    assert lb["enable_deletion_protection"] == "${var.alb_deletion_protection}"
    assert "access_logs" in json.dumps(lb.get("dynamic", []))
    health = one(module["aws_lb_target_group.api"]["health_check"])
    assert health["path"] == "/readyz"


def test_ingest_and_reads_have_their_own_target_groups(module: dict[str, dict[str, Any]]) -> None:
    ingest = module["aws_lb_listener_rule.ingest"]
    conditions = json.dumps(ingest["condition"])
    for needed in ('"POST"', "/v1/datasets/*/events", "/push/*"):
        assert needed in conditions
    assert 'api[\\"ingest\\"]' in json.dumps(ingest["action"])
    read = json.dumps(module["aws_lb_listener_rule.read"])
    for needed in ('"GET"', "/v1/*", 'api[\\"read\\"]'):
        assert needed in read


def test_tasks_are_hardened_and_wired(module: dict[str, dict[str, Any]]) -> None:
    values = locals_of(MODULE)
    hardening = one(values["hardening"])
    assert hardening["readonlyRootFilesystem"] is True
    assert hardening["user"] == "${var.container_user}"
    assert hardening.get("privileged") is not True
    logging = json.dumps(values["logging"])
    assert "awslogs" in logging
    api = module["aws_ecs_task_definition.api"]["container_definitions"]
    worker = module["aws_ecs_task_definition.worker"]["container_definitions"]
    assert 'command = ["api"]' in api
    assert 'command = ["worker"' in worker
    for definition in (api, worker):
        assert "local.hardening" in definition
    assert "secrets = local.container_secrets" in api
    for service in ("api", "worker"):
        body = module[f"aws_ecs_service.{service}"]
        breaker = one(body["deployment_circuit_breaker"])
        assert breaker == {"enable": True, "rollback": True}
        network = one(body["network_configuration"])
        assert network["subnets"] == "${var.private_subnet_ids}"
        assert network["assign_public_ip"] is False
        assert body["launch_type"] == "FARGATE"
    cluster = one(module["aws_ecs_cluster.main"]["setting"])
    assert cluster == {"name": "containerInsights", "value": "enabled"}


def test_probe_loops_per_dataset_through_the_public_url(module: dict[str, dict[str, Any]]) -> None:
    probe = module["aws_ecs_task_definition.probe"]
    assert probe["count"] == "${local.probe_enabled ? 1 : 0}"
    definitions = probe["container_definitions"]
    for needed in (
        '"probe"',
        "var.probe_url",
        "--dataset",
        "--metrics-port",
        "SLIPSTREAM_PROBE_API_KEY",
    ):
        assert needed in definitions
    assert "local.hardening" in definitions
    assert "${" not in json.dumps(module["aws_ecs_service.probe"]["network_configuration"]).replace(
        "${var.private_subnet_ids}", ""
    ).replace("${aws_security_group.tasks.id}", "")


def test_container_user_cannot_be_root() -> None:
    variables = {k: v for e in parse(MODULE / "variables.tf")["variable"] for k, v in e.items()}
    assert "[1-9]" in one(variables["container_user"]["validation"])["condition"]


def test_worker_scales_on_the_queue_backlog(module: dict[str, dict[str, Any]]) -> None:
    for key in ("worker_backlog_high", "worker_backlog_low"):
        alarm = json.dumps(module[f"aws_cloudwatch_metric_alarm.{key}"])
        assert "ApproximateNumberOfMessagesVisible" in alarm
        assert "aws_appautoscaling_policy.worker_" in alarm
    assert module["aws_appautoscaling_policy.worker_out"]["policy_type"] == "StepScaling"


def test_secrets_come_from_secrets_manager(module: dict[str, dict[str, Any]]) -> None:
    secret = module["aws_secretsmanager_secret.api_keys"]
    assert secret["kms_key_id"] == "${aws_kms_key.main.arn}"
    assert not [k for k in module if k.startswith("aws_secretsmanager_secret_version.")], (
        "secret values are set out of band, never in Terraform's state"
    )
    secrets = json.dumps(locals_of(MODULE)["container_secrets"])
    for needed in ("SLIPSTREAM_API_KEYS", "PGPASSWORD", ":password::"):
        assert needed in secrets


# --- IAM ------------------------------------------------------------------------------------------------


def test_no_wildcard_action_and_star_resources_only_where_aws_requires() -> None:
    documented = DOCS.read_text(encoding="utf-8")
    seen = 0
    for folder in (MODULE, EXAMPLE):
        for key, statement in statements(folder):
            seen += 1
            for action in statement.get("actions", []):
                assert action != "*", f"{key}: every action"
                assert not action.endswith(":*"), f"{key}: every action of {action}"
            if "*" in statement.get("resources", []):
                sid = statement.get("sid", "")
                assert sid in STAR_RESOURCE_ALLOWED, f"{key}: resource * in statement {sid!r}"
                assert sid in documented, f"{sid} is not explained in docs/deploy-aws.md"
            assert "not_actions" not in statement
            assert "not_resources" not in statement
    assert seen > 10
    # Policies are only written as aws_iam_policy_document, so the checks above see every one.
    for path in TF_FILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'"?Action"?\s*[=:]', text), path


def test_task_roles_reach_only_their_own_queues_and_topics(data: dict[str, dict[str, Any]]) -> None:
    api = {s["sid"]: s for s in data["aws_iam_policy_document.api"]["statement"]}
    assert api["PublishToDatasetTopics"]["actions"] == ["sns:Publish"]
    assert api["PublishToDatasetTopics"]["resources"] == "${local.topic_arns}"
    worker = {s["sid"]: s for s in data["aws_iam_policy_document.worker"]["statement"]}
    consume = worker["ConsumeDatasetQueues"]
    assert set(consume["actions"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert consume["resources"] == "${local.queue_arns}"
    assert worker["DeadLetter"]["resources"] == "${local.dlq_arns}"
    execution = {s["sid"]: s for s in data["aws_iam_policy_document.execution"]["statement"]}
    assert execution["ReadTaskSecrets"]["actions"] == ["secretsmanager:GetSecretValue"]
    assert "*" not in json.dumps(execution["ReadTaskSecrets"]["resources"])


# --- alarms from the SLO spec -------------------------------------------------------------------------


def slo_plan(binary: str, folder: Path, *, agent: bool) -> dict[str, Any]:
    folder.mkdir()
    (folder / "main.tf").write_text(
        f"""
module "plan" {{
  source              = "{SLO_MODULE.as_posix()}"
  slo_spec            = yamldecode(file("{SLO_SPEC.as_posix()}"))
  datasets            = ["flights", "trains"]
  name_prefix         = "slipstream"
  agent_enabled       = {str(agent).lower()}
  metrics_namespace   = "Slipstream/Prometheus"
  load_balancer       = "app/slipstream/0123"
  ingest_target_group = "targetgroup/slipstream-ingest/4567"
  read_target_group   = "targetgroup/slipstream-read/89ab"
}}

output "plan" {{
  value = module.plan
}}
""",
        encoding="utf-8",
    )
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        done = run_terraform(binary, args, folder)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run_terraform(binary, ["output", "-json", "plan"], folder)
    assert done.returncode == 0, done.stderr
    plan: dict[str, Any] = json.loads(done.stdout)
    return plan


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict[str, Any]]:
    binary = terraform()
    base = tmp_path_factory.mktemp("slo-alarms")
    return {
        agent: slo_plan(binary, base / f"agent-{agent}", agent=agent) for agent in (True, False)
    }


def test_every_slo_gets_alarms_when_the_agent_publishes_metrics(
    plans: dict[bool, dict[str, Any]], spec: dict[str, Any]
) -> None:
    plan = plans[True]
    names = {s["name"] for s in spec["slos"]}
    assert set(plan["slo_source"]) == names
    assert "none" not in plan["slo_source"].values(), plan["slo_source"]
    alarmed = {a["slo"] for a in plan["burn_alarms"].values()} | {
        a["slo"] for a in plan["latency_alarms"].values()
    }
    assert alarmed == names
    for name in names:
        assert any(name in a["name"] for a in plan["burn_alarms"].values()) or any(
            a["slo"] == name for a in plan["latency_alarms"].values()
        )


def test_without_the_agent_only_alb_slos_are_in_cloudwatch_and_the_docs_say_so(
    plans: dict[bool, dict[str, Any]], spec: dict[str, Any]
) -> None:
    sources = plans[False]["slo_source"]
    docs = DOCS.read_text(encoding="utf-8")
    for slo in spec["slos"]:
        assert f"`{slo['name']}`" in docs, f"docs/deploy-aws.md does not map SLO {slo['name']}"
        metric = slo["sli"]["metric"]
        if metric.startswith("slipstream_http_"):
            assert sources[slo["name"]] != "none"
        else:
            assert sources[slo["name"]] == "none"
    assert "not native" in docs.lower() or "cannot measure" in docs.lower()


def test_burn_rate_alarms_follow_the_multi_window_rule(
    plans: dict[bool, dict[str, Any]], spec: dict[str, Any]
) -> None:
    plan = plans[True]
    objectives = {s["name"]: s["objective"] for s in spec["slos"]}
    rules = {r["factor"]: (r["long"], r["short"]) for r in plan["burn_rules"].values()}
    assert rules == BURN_RULES
    severity = {r["factor"]: r["severity"] for r in plan["burn_rules"].values()}
    assert severity == {14.4: "page", 6: "page", 3: "ticket", 1: "ticket"}
    alarms = plan["burn_alarms"]
    for key, composite in plan["burn_composites"].items():
        long, short = alarms[composite["long"]], alarms[composite["short"]]
        assert (long["window"], short["window"]) == BURN_RULES[composite["factor"]], key
        budget = (100 - objectives[composite["slo"]]) / 100
        for alarm in (long, short):
            assert alarm["threshold"] == pytest.approx(composite["factor"] * budget)
    scopes = {(a["slo"], a["scope"]) for a in alarms.values()}
    assert ("api-availability", "all") in scopes
    assert {("probe-correctness", "flights"), ("freshness", "trains")} <= scopes


def test_slis_read_the_right_cloudwatch_series(plans: dict[bool, dict[str, Any]]) -> None:
    alarms = plans[True]["burn_alarms"]
    availability = alarms["api-availability/all/page-fast/long"]
    assert {p["metric"] for p in availability["parts"]} == {
        "HTTPCode_Target_5XX_Count",
        "HTTPCode_ELB_5XX_Count",
    }
    assert availability["total"]["metric"] == "RequestCount"
    assert availability["total"]["dims"] == {"LoadBalancer": "app/slipstream/0123"}
    ingest = alarms["ingest-acceptance/all/page-fast/long"]
    assert ingest["total"]["dims"]["TargetGroup"] == "targetgroup/slipstream-ingest/4567"
    probe = alarms["probe-correctness/flights/page-fast/long"]
    assert probe["mode"] == "bad"
    assert sorted(p["dims"]["result"] for p in probe["parts"]) == ["failed", "mismatch"]
    assert probe["total"]["dims"] == {"dataset": "flights"}
    freshness = alarms["freshness/flights/page-fast/long"]
    assert freshness["mode"] == "good"
    assert freshness["parts"][0]["metric"] == "slipstream_freshness_seconds_bucket"
    assert freshness["parts"][0]["dims"] == {"dataset": "flights", "le": "10.0"}
    assert freshness["total"]["metric"] == "slipstream_freshness_seconds_count"
    latency = plans[True]["latency_alarms"]
    assert latency["read-latency/3600"]["statistic"] == "p99"
    assert latency["read-latency/3600"]["threshold"] == 0.1
    assert latency["read-latency-p95/300"]["statistic"] == "p95"
    assert plans[True]["read_dims"]["TargetGroup"] == "targetgroup/slipstream-read/89ab"


def test_alarm_resources_use_the_plan_and_the_example_passes_the_real_spec(
    module: dict[str, dict[str, Any]],
) -> None:
    assert module["aws_cloudwatch_metric_alarm.burn"]["for_each"] == "${local.burn_alarms}"
    assert module["aws_cloudwatch_composite_alarm.burn"]["for_each"] == "${local.burn_composites}"
    assert (
        module["aws_cloudwatch_metric_alarm.latency"]["extended_statistic"]
        == "${each.value.statistic}"
    )
    dlq = module["aws_cloudwatch_metric_alarm.dlq_depth"]
    assert (dlq["metric_name"], dlq["threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)
    assert dlq["comparison_operator"] == "GreaterThanThreshold"
    assert "dlq_names" in json.dumps(dlq["dimensions"])
    assert (
        module["aws_cloudwatch_metric_alarm.backlog_age"]["metric_name"]
        == "ApproximateAgeOfOldestMessage"
    )
    assert module["aws_cloudwatch_metric_alarm.db_cpu"]["metric_name"] == "CPUUtilization"
    assert (
        module["aws_cloudwatch_metric_alarm.db_free_storage"]["metric_name"] == "FreeStorageSpace"
    )
    example = (EXAMPLE / "main.tf").read_text(encoding="utf-8")
    match = re.search(r'yamldecode\(file\("\$\{path\.root\}/([^"]+slos\.yaml)"\)\)', example)
    assert match, "the example passes the SLO spec file in"
    assert (EXAMPLE / match.group(1)).resolve() == SLO_SPEC.resolve()
    datasets = re.search(r'file\("\$\{path\.root\}/([^"]+flights\.yaml)"\)', example)
    assert datasets
    assert (EXAMPLE / datasets.group(1)).resolve().is_file()


# --- variable validation (variables.tf alone needs no provider) -----------------------------------------

GOOD: dict[str, Any] = {
    "region": "eu-west-1",
    "datasets": ["flights"],
    "vpc_id": "vpc-0123456789abcdef0",
    "public_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "private_subnet_ids": ["subnet-0123456789abcdef2"],
    "database_subnet_ids": ["subnet-0123456789abcdef3", "subnet-0123456789abcdef4"],
    "alb_ingress_cidrs": ["0.0.0.0/0"],
    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipstream:1.0.0",
    "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0000-0000-0000-000000000000",
    "slo_spec": {
        "slos": [{"name": "a", "objective": 99.9, "sli": {"type": "ratio", "metric": "m"}}]
    },
}


@pytest.fixture(scope="module")
def variables_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    binary = terraform()
    folder = tmp_path_factory.mktemp("aws-variables")
    shutil.copy(MODULE / "variables.tf", folder / "variables.tf")
    done = run_terraform(binary, ["init", "-input=false"], folder)
    assert done.returncode == 0, done.stderr
    return binary, folder


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({}, None),
        ({"image": "ghcr.io/acme/slipstream@sha256:" + "a" * 64}, None),
        ({"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipstream:latest"}, "image"),
        ({"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipstream"}, "image"),
        ({"region": "eu-west-1a"}, "region"),
        ({"alb_ingress_cidrs": ["10.0.0.0/33"]}, "alb_ingress_cidrs"),
        ({"alb_ingress_cidrs": ["::/0"]}, "alb_ingress_cidrs"),
        ({"name_prefix": "Slip_Stream"}, "name_prefix"),
        ({"datasets": ["Flights"]}, "datasets"),
        ({"datasets": ["a" * 63], "name_prefix": "a" * 20}, "datasets"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"container_user": "0"}, "container_user"),
        ({"queue_retention_seconds": 1209600}, "queue_retention_seconds"),
        (
            {"cloudwatch_agent_image": "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest"},
            "cloudwatch_agent_image",
        ),
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
    # The same layout in a scratch tree: the example reads the SLO spec and the datasets file
    # four levels up, and init must not leave .terraform in the working tree.
    shutil.copytree(
        AWS, tmp_path / "deploy/terraform/aws", ignore=shutil.ignore_patterns(".terraform*")
    )
    for relative in ("observability/slo/slos.yaml", "src/slipstream/datasets/flights.yaml"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    root = tmp_path / "deploy/terraform/aws/examples/production"
    init_or_skip(binary, root, "hashicorp/aws")
    done = run_terraform(binary, ["validate"], root)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_baseline_gives_a_reason_per_skip() -> None:
    skips = yaml.safe_load(CHECKOV_BASELINE.read_text(encoding="utf-8")) or {}
    assert isinstance(skips, dict)
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), check
        assert isinstance(reason, str), check
        assert reason.strip(), check
        assert "\n" not in reason.strip(), check
