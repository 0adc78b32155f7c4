"""The documentation names every endpoint, command and setting the software has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from slipstream.api.app import create_app
from slipstream.api.route_facts import described_routes
from slipstream.cli import app as cli_app
from slipstream.config import ENV_PREFIX, Settings
from slipstream.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(
    p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
)


def routes() -> list[str]:
    """Every route of the OpenAPI description, as a template (the description itself writes
    the dataset routes out once per dataset)."""
    app = create_app(Runtime(Settings(_env_file=None)))  # type: ignore[call-arg]
    return sorted(f"{m.upper()} {r.path}" for r in described_routes(app.routes) for m in r.methods)


@pytest.mark.parametrize("route", routes())
def test_every_endpoint_is_documented(route: str) -> None:
    method, path = route.split(" ")
    # Docs show concrete paths: /v1/datasets/flights/events/LA800-1 stands for …/{ds}/events/{event_id}
    pattern = (
        re.escape(path)
        .replace(r"\{ds\}", r"(\{ds\}|flights)")
        .replace(r"\{event_id\}", r"(\{id\}|[\w-]+)")
    )
    assert re.search(rf"(GET|POST|-X {method}).*{pattern}\b", DOCS) or re.search(
        rf"{method} `?{pattern}", DOCS
    ), f"{route} is not in README.md or docs/"


@pytest.mark.parametrize(
    "command", sorted(c.name or "" for c in typer.main.get_command(cli_app).commands.values())
)  # type: ignore[attr-defined]
def test_every_command_is_documented(command: str) -> None:
    assert f"slipstream {command}" in DOCS


@pytest.mark.parametrize("setting", sorted(Settings.model_fields))
def test_every_setting_is_documented(setting: str) -> None:
    assert f"{ENV_PREFIX}{setting.upper()}" in DOCS


def test_readme_commands_hold_no_placeholders() -> None:
    """A `…` in a command (not in a comment showing an answer) cannot be run as written; the
    examples against a running server are run by tests/e2e/test_readme.py."""
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            command = line.split("#")[0]
            assert "…" not in command, f"README example not runnable as written: {line}"
