"""The Kubernetes manifests as `kubectl kustomize` renders them: base and every overlay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
RULES_DIR = ROOT / "observability" / "prometheus" / "rules"
DATASETS_DIR = ROOT / "src" / "slipstream" / "datasets"
IMAGE = "ghcr.io/slipstream-data/slipstream"
SECRET_NAME = "slipstream"

OVERLAYS = sorted(
    p.parent.relative_to(KUBERNETES).as_posix()
    for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml")
)
TARGETS = ["base", *OVERLAYS]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    kubectl = require_tool("kubectl", "install kubectl (it bundles kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {target} failed:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def of_kind(target: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in render(target) if d["kind"] == kind]


def named(target: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(target, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def workloads(target: str) -> list[dict[str, Any]]:
    return [d for d in render(target) if d["kind"] in WORKLOAD_KINDS]


def containers(target: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], bool]]:
    """(where, pod spec, container, is_init) for every container of every workload."""
    for workload in workloads(target):
        spec = pod_spec(workload)
        where = f"{target}: {workload['kind']} {workload['metadata']['name']}"
        for container in spec.get("initContainers") or []:
            yield f"{where} init {container['name']}", spec, container, True
        for container in spec["containers"]:
            yield f"{where} {container['name']}", spec, container, False


by_target = pytest.mark.parametrize("target", TARGETS)
by_overlay = pytest.mark.parametrize("target", OVERLAYS)


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"overlays/dev", "overlays/prod"} <= set(OVERLAYS)


@by_target
def test_kustomize_builds(target: str) -> None:
    kinds = {d["kind"] for d in render(target)}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= kinds


@by_target
def test_api_and_worker_deployments(target: str) -> None:
    api = named(target, "Deployment", "slipstream-api")
    worker = named(target, "Deployment", "slipstream-worker")
    assert pod_spec(api)["containers"][0]["args"][0] == "api"
    assert pod_spec(worker)["containers"][0]["args"][0] == "worker"
    # The autoscalers own the replica count; a `replicas` here would be reset by every apply.
    assert "replicas" not in api["spec"]
    assert "replicas" not in worker["spec"]


@by_target
def test_every_container_has_requests_and_limits(target: str) -> None:
    for where, _, container, _ in containers(target):
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resource in (resources.get(bound) or {}), f"{where}: no {bound}.{resource}"


@by_target
def test_every_container_is_locked_down(target: str) -> None:
    for where, spec, container, _ in containers(target):
        pod = spec.get("securityContext") or {}
        ctx = container.get("securityContext") or {}
        assert ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
        uid = ctx.get("runAsUser", pod.get("runAsUser"))
        assert isinstance(uid, int), f"{where}: runAsUser {uid}"
        assert uid >= 10000, f"{where}: runAsUser {uid}"
        assert ctx.get("readOnlyRootFilesystem") is True, where
        assert ctx.get("allowPrivilegeEscalation") is False, where
        assert ctx.get("privileged", False) is False, where
        assert (ctx.get("capabilities") or {}).get("drop") == ["ALL"], where
        assert not (ctx.get("capabilities") or {}).get("add"), where
        seccomp = ctx.get("seccompProfile") or pod.get("seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", where


@by_target
def test_pods_mount_a_writable_tmp_and_no_token(target: str) -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind(target, "ServiceAccount")}
    for workload in workloads(target):
        spec = pod_spec(workload)
        where = f"{target}: {workload['kind']} {workload['metadata']['name']}"
        assert spec.get("automountServiceAccountToken") is False, where
        account = spec.get("serviceAccountName")
        assert account in accounts, f"{where}: service account {account} is not in the output"
        assert accounts[account].get("automountServiceAccountToken") is False
        assert not spec.get("hostNetwork"), where
        assert not spec.get("hostPID"), where
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
            assert "/tmp" in mounts, f"{where}: the read-only root needs /tmp mounted"
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is an emptyDir"


def http_probe(container: dict[str, Any], kind: str) -> dict[str, Any]:
    probe = container.get(kind)
    assert probe, f"{container['name']}: no {kind}"
    get = probe["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
    port = get["port"]
    assert port in ports or port in ports.values(), f"{container['name']}: {kind} port {port}"
    return get  # type: ignore[no-any-return]


@by_target
def test_deployments_have_readiness_and_liveness_probes(target: str) -> None:
    for deployment in of_kind(target, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            http_probe(container, "readinessProbe")
            http_probe(container, "livenessProbe")
    api = pod_spec(named(target, "Deployment", "slipstream-api"))["containers"][0]
    assert http_probe(api, "readinessProbe")["path"] == "/readyz"
    assert http_probe(api, "livenessProbe")["path"] == "/healthz"
    worker = pod_spec(named(target, "Deployment", "slipstream-worker"))["containers"][0]
    assert http_probe(worker, "readinessProbe")["path"] == "/readyz"
    assert http_probe(worker, "livenessProbe")["path"] == "/healthz"
    worker_port = worker["args"][worker["args"].index("--metrics-port") + 1]
    assert {"name": "metrics", "containerPort": int(worker_port), "protocol": "TCP"} in worker[
        "ports"
    ]


@by_target
def test_images_are_the_release_image_pinned(target: str) -> None:
    for where, _, container, _ in containers(target):
        image = container["image"]
        assert image.startswith(IMAGE + ":") or image.startswith(IMAGE + "@"), where
        tag = image[len(IMAGE) + 1 :].split("@")[0]
        assert "@sha256:" in image or (tag and tag != "latest"), f"{where}: {image}"


@by_target
def test_settings_come_from_the_secret_and_the_datasets_configmap(target: str) -> None:
    datasets = [c for c in of_kind(target, "ConfigMap") if "flights.yaml" in c.get("data", {})]
    assert len(datasets) == 1
    assert datasets[0]["data"]["flights.yaml"] == (DATASETS_DIR / "flights.yaml").read_text()
    for name in ("slipstream-api", "slipstream-worker"):
        spec = pod_spec(named(target, "Deployment", name))
        container = spec["containers"][0]
        refs = [e["secretRef"]["name"] for e in container.get("envFrom") or [] if "secretRef" in e]
        assert refs == [SECRET_NAME], f"{name}: settings from the Secret {SECRET_NAME}"
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        assert env.get("SLIPSTREAM_HOST") == "0.0.0.0"
        mounted = {v["name"]: v for v in spec["volumes"]}
        path = Path(env["SLIPSTREAM_DATASETS"])
        mount = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
        assert mount, f"{name}: nothing mounted at {path.parent}"
        volume = mounted[mount[0]["name"]]
        assert volume["configMap"]["name"] == datasets[0]["metadata"]["name"]


@by_target
def test_no_secret_values_are_committed(target: str) -> None:
    for secret in of_kind(target, "Secret"):
        assert not secret.get("data"), secret["metadata"]
        assert not secret.get("stringData"), secret["metadata"]
    for path in KUBERNETES.rglob("*.y*ml"):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict):
                assert document.get("kind") != "Secret", f"{path}: create the Secret out of git"
                assert not document.get("secretGenerator"), f"{path}: no generated Secrets"


@by_target
def test_api_autoscales_on_cpu(target: str) -> None:
    hpa = named(target, "HorizontalPodAutoscaler", "slipstream-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "slipstream-api",
    }
    resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert "cpu" in resources
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


@by_target
def test_workers_scale_on_the_broker_backlog(target: str) -> None:
    scaled = named(target, "ScaledObject", "slipstream-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "slipstream-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert "slipstream_broker_backlog" in metadata["query"]
    assert {"serverAddress", "threshold"} <= set(metadata)
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata values are strings"
    # The query selects this installation's own series.
    namespace = scaled["metadata"]["namespace"]
    assert f'namespace="{namespace}"' in metadata["query"]
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]


@by_target
def test_disruption_budgets(target: str) -> None:
    for component in ("api", "worker"):
        pdb = named(target, "PodDisruptionBudget", f"slipstream-{component}")
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])


def policy_for(target: str, component: str) -> dict[str, Any]:
    return named(target, "NetworkPolicy", f"slipstream-{component}")


@by_target
def test_network_policies(target: str) -> None:
    for component in ("api", "worker", "probe"):
        policy = policy_for(target, component)
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert 53 in egress_ports, f"{component}: DNS"
    api_ports = {
        p["port"] for r in policy_for(target, "api")["spec"]["ingress"] for p in r["ports"]
    }
    assert api_ports == {8080}
    worker_ingress = policy_for(target, "worker")["spec"]["ingress"]
    assert {p["port"] for r in worker_ingress for p in r["ports"]} == {9464}, "metrics only"
    assert all(r.get("from") for r in worker_ingress), "metrics scrapes from Prometheus only"
    api_egress = {
        p["port"] for r in policy_for(target, "api")["spec"]["egress"] for p in r["ports"]
    }
    assert {4222, 5432} <= api_egress, "NATS and PostgreSQL"


@by_target
def test_every_pod_is_covered_by_a_network_policy(target: str) -> None:
    policies = [
        p["spec"]["podSelector"].get("matchLabels", {}) for p in of_kind(target, "NetworkPolicy")
    ]
    for workload in workloads(target):
        spec = workload["spec"]
        template = (spec["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else spec)[
            "template"
        ]
        labels = template["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in policies), workload["metadata"]["name"]


@by_target
def test_metrics_are_scraped(target: str) -> None:
    monitors = of_kind(target, "ServiceMonitor") + of_kind(target, "PodMonitor")
    services = {s["metadata"]["name"]: s for s in of_kind(target, "Service")}
    jobs = set()
    for monitor in monitors:
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"].get("podMetricsEndpoints")
        assert endpoints, monitor["metadata"]["name"]
        for endpoint in endpoints:
            for relabel in endpoint.get("relabelings") or []:
                if relabel.get("targetLabel") == "job":
                    jobs.add(relabel["replacement"])
        if monitor["kind"] == "ServiceMonitor":
            selector = monitor["spec"]["selector"]["matchLabels"]
            matching = [
                s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()
            ]
            assert matching, f"{monitor['metadata']['name']} selects no Service"
            ports = {p["name"] for s in matching for p in s["spec"]["ports"]}
            assert {e["port"] for e in endpoints} <= ports
    # The job names observability/prometheus/prometheus.yml uses, which the rules rely on.
    assert {"slipstream-api", "slipstream-worker", "slipstream-probe"} <= jobs


def generated_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted([*RULES_DIR.glob("*.yaml"), *RULES_DIR.glob("*.yml")]):
        groups.extend((yaml.safe_load(path.read_text()) or {}).get("groups") or [])
    return groups


@by_target
def test_prometheus_rule_carries_the_generated_rules(target: str) -> None:
    (rule,) = of_kind(target, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == generated_groups(), (
        "the PrometheusRule is out of date: run python deploy/kubernetes/sync.py"
    )


def test_generated_copies_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(KUBERNETES / "sync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_rules_exist() -> None:
    """Otherwise the copy check above would compare nothing with nothing."""
    assert generated_groups(), f"no rule groups in {RULES_DIR} (slipstream slo generate)"


@by_target
def test_namespaced_and_labelled(target: str) -> None:
    for document in render(target):
        metadata = document["metadata"]
        assert metadata.get("namespace"), f"{document['kind']} {metadata['name']}: no namespace"
        assert metadata["labels"].get("app.kubernetes.io/part-of") == "slipstream"
    for workload in workloads(target):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/part-of") == "slipstream"
        assert labels.get("app.kubernetes.io/component")


@by_overlay
def test_overlays_label_env_and_system(target: str) -> None:
    env = target.rsplit("/", 1)[1]
    for workload in workloads(target):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels.get("slipstream.io/env") == env
        assert labels.get("slipstream.io/system")
    namespaces = {d["metadata"]["namespace"] for d in render(target)}
    assert len(namespaces) == 1


def test_prod_is_bigger_and_spread_out() -> None:
    dev, prod = "overlays/dev", "overlays/prod"
    api_hpa = [named(t, "HorizontalPodAutoscaler", "slipstream-api")["spec"] for t in (dev, prod)]
    assert api_hpa[1]["minReplicas"] > api_hpa[0]["minReplicas"]
    assert api_hpa[1]["maxReplicas"] > api_hpa[0]["maxReplicas"]
    scaled = [named(t, "ScaledObject", "slipstream-worker")["spec"] for t in (dev, prod)]
    assert scaled[1]["minReplicaCount"] >= 2
    assert scaled[1]["maxReplicaCount"] > scaled[0]["maxReplicaCount"]
    for name in ("slipstream-api", "slipstream-worker"):
        limits = [
            pod_spec(named(t, "Deployment", name))["containers"][0]["resources"]["limits"]
            for t in (dev, prod)
        ]
        assert parse_memory(limits[1]["memory"]) > parse_memory(limits[0]["memory"]), name
        spec = pod_spec(named(prod, "Deployment", name))
        assert spec.get("topologySpreadConstraints"), f"{name}: spread over zones and nodes"
        assert spec.get("affinity", {}).get("podAntiAffinity"), name
        pdb = named(prod, "PodDisruptionBudget", name)["spec"]
        assert pdb.get("minAvailable", 0) >= 1, f"{name}: prod keeps a floor"
    assert (
        named(prod, "PodDisruptionBudget", "slipstream-api")["spec"]["minAvailable"]
        < (api_hpa[1]["minReplicas"])
    ), "a budget at the replica floor would block every drain"


def parse_memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)
