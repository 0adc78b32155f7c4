"""checkov over every deployment file: no failed check beyond the baseline, and no stale baseline.

The baseline is one file per area, deploy/checks/checkov/<area>.yaml, a mapping of check id to
the one-line reason it does not apply. A listed check that no longer fires is reported too, so
the baseline only ever shrinks to what is still true.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import ROOT, require_tool

BASELINES = ROOT / "deploy" / "checks" / "checkov"
OVERLAYS = ("dev", "prod")


def baseline(area: str) -> dict[str, str]:
    path = BASELINES / f"{area}.yaml"
    if not path.exists():
        return {}
    skips: dict[str, str] = yaml.safe_load(path.read_text()) or {}
    for check, reason in skips.items():
        assert isinstance(reason, str), f"{path.name}: {check} needs a one-line reason"
        assert reason.strip(), f"{path.name}: {check} needs a one-line reason"
    return skips


def kubernetes_files(tmp_path: Path) -> list[str]:
    kubectl = require_tool("kubectl", "install kubectl; it renders the kustomize overlays")
    files = []
    for overlay in OVERLAYS:
        rendered = subprocess.run(
            [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        path = tmp_path / f"{overlay}.yaml"
        path.write_text(rendered)
        files.append(str(path))
    return files


def targets(area: str, tmp_path: Path) -> list[str]:
    if area == "kubernetes":
        return [arg for f in kubernetes_files(tmp_path) for arg in ("-f", f)]
    if area == "docker":
        return ["-f", str(ROOT / "deploy" / "docker" / "Dockerfile")]
    if area == "github_actions":
        return [
            arg
            for f in sorted((ROOT / ".github" / "workflows").glob("*.yml"))
            for arg in ("-f", str(f))
        ]
    cloud = area.removeprefix("terraform-")
    return ["-d", str(ROOT / "deploy" / "terraform" / cloud)]


FRAMEWORKS = {
    "terraform-gcp": "terraform",
    "terraform-aws": "terraform",
    "kubernetes": "kubernetes",
    "docker": "dockerfile",
    "github_actions": "github_actions",
}


def run_checkov(area: str, tmp_path: Path) -> list[dict[str, Any]]:
    checkov = require_tool("checkov", "run `make tools` (checkov lives in .venv-iac)")
    command = [checkov, "--framework", FRAMEWORKS[area], "--quiet", "--compact", "-o", "json"]
    command += ["--skip-download"]  # no policy download: the run is offline and repeatable
    command += targets(area, tmp_path)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {done.returncode}): {done.stderr[-2000:]}")
    return report if isinstance(report, list) else [report]


@pytest.mark.slow
@pytest.mark.parametrize("area", sorted(FRAMEWORKS))
def test_checkov(area: str, tmp_path: Path) -> None:
    skips = baseline(area)
    # Run every check, then hold the failures against the baseline: a failure not in it fails
    # the test, and so does a baseline entry that no longer fails (it would hide a regression).
    reports = run_checkov(area, tmp_path)
    failures = [c for report in reports for c in report.get("results", {}).get("failed_checks", [])]
    unexpected = [
        f"{c['check_id']} {c['check_name']} — {c.get('resource')} ({c.get('file_path')})"
        for c in failures
        if c["check_id"] not in skips
    ]
    assert not unexpected, f"{len(unexpected)} failed checks:\n" + "\n".join(unexpected)
    parsing = sum(report.get("summary", {}).get("parsing_errors", 0) for report in reports)
    assert parsing == 0, f"checkov could not parse {parsing} file(s) of {area}"
    passed = sum(report.get("summary", {}).get("passed", 0) for report in reports)
    assert passed > 0, f"checkov checked nothing in {area}"
    stale = sorted(set(skips) - {c["check_id"] for c in failures})
    assert not stale, f"deploy/checks/checkov/{area}.yaml lists checks that no longer fail: {stale}"
