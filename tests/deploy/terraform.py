"""What the Terraform tests of both clouds share: HCL parsed without python-hcl2's quoting and
markers, and the terraform binary run offline."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.tools import require_tool

HOW_TO_GET_TERRAFORM = "install Terraform 1.10+ (https://developer.hashicorp.com/terraform/install)"


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = _clean(hcl2.load(handle))
    return parsed


def terraform() -> str:
    return require_tool("terraform", HOW_TO_GET_TERRAFORM)


def run_terraform(binary: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    if args[0] in ("init", "plan", "apply", "validate"):
        args = [args[0], "-no-color", *args[1:]]
    return subprocess.run(
        [binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def init_or_skip(binary: str, root: Path, provider: str) -> None:
    """`terraform init -backend=false` in `root`, or skip: providers come from the registry,
    which a machine without internet access cannot reach."""
    done = run_terraform(binary, ["init", "-backend=false", "-input=false"], root)
    if done.returncode != 0:
        lines = [line.strip("│ ") for line in (done.stderr + done.stdout).splitlines()]
        reason = next((line for line in lines if "Error:" in line), lines[-1] if lines else "")
        pytest.skip(
            f"terraform validate needs the {provider} provider, which could not be downloaded "
            f"here ({reason})"
        )


def assert_validation(
    binary: str, folder: Path, values: dict[str, Any], refused: str | None
) -> None:
    """Plan the variables-only root in `folder` with `values`: it must pass, or be refused by
    the validation of variable `refused`."""
    path = folder / f"case-{abs(hash(json.dumps(values, sort_keys=True)))}.tfvars.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    done = run_terraform(
        binary, ["plan", "-lock=false", "-refresh=false", f"-var-file={path.name}"], folder
    )
    if refused is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert f"var.{refused}" in done.stderr, done.stderr
