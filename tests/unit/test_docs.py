"""The documentation names every endpoint, command, setting and backend option the software has,
and the source reads no SLIPSTREAM_* variable that is not a setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from slipstream.api.app import create_app
from slipstream.api.route_facts import described_routes
from slipstream.brokers import BROKERS
from slipstream.cli import app as cli_app
from slipstream.config import ENV_PREFIX, Settings
from slipstream.options import BackendOptions
from slipstream.registry import load_backend
from slipstream.runtime import Runtime
from slipstream.stores import STORES
from tests import helpers


def commands_of(app: typer.Typer) -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return [command.name or "" for command in group.commands.values()]


ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(
    p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
)
BACKEND_DOCS = "\n".join(
    p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs" / "backends").glob("*.md"))]
)
SETTING_NAMES = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
# The docs page of each backend with an options table, by URL scheme.
BACKEND_PAGES = {
    "nats": "nats.md",
    "pubsub": "pubsub.md",
    "sqs": "sqs.md",
    "postgresql": "postgresql.md",
    "bigquery": "bigquery.md",
}


def url_options(scheme: str) -> type[BackendOptions]:
    entries = {**BROKERS, **STORES}
    options: type[BackendOptions] = load_backend(f"{scheme}://", "URL", entries).url_options
    return options


SCHEMES = sorted({*BROKERS, *STORES} - {"postgres"})  # postgres:// is postgresql://


def routes() -> list[str]:
    """Every route of the OpenAPI description, as a template (the description itself writes
    the dataset routes out once per dataset)."""
    app = create_app(Runtime(helpers.settings()))
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


@pytest.mark.parametrize("command", sorted(commands_of(cli_app)))
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


@pytest.mark.parametrize(
    ("scheme", "option"),
    [(scheme, name) for scheme in SCHEMES for name in url_options(scheme).option_names()],
)
def test_every_backend_option_is_documented(scheme: str, option: str) -> None:
    """In the backend's page (docs/backends/) or the README: `option` or `?option=…`."""
    assert re.search(rf"`{option}`|[?&]{option}=", BACKEND_DOCS), (
        f"{scheme}:// option {option!r} is not in README.md or docs/backends/"
    )


@pytest.mark.parametrize(("scheme", "page"), sorted(BACKEND_PAGES.items()))
def test_every_documented_backend_option_exists(scheme: str, page: str) -> None:
    """The rows of a page's `| parameter |` table are options its backend declares."""
    text = (ROOT / "docs" / "backends" / page).read_text()
    tables = re.findall(r"^\| parameter \|.*\n((?:\|.*\n)+)", text, re.M)
    documented = {name for table in tables for name in re.findall(r"^\| `(\w+)`", table, re.M)}
    documented |= {n for t in tables for n in re.findall(r"^\| `\w+` / `(\w+)`", t, re.M)}
    assert documented <= set(url_options(scheme).option_names()), page


def test_the_source_reads_no_variable_that_is_not_a_setting() -> None:
    """Every SLIPSTREAM_* name in src/ is a setting of `Settings` (which documents itself above):
    a variable read anywhere else would be neither validated at start nor documented."""
    stray = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "src").rglob("*"))
        if path.suffix in {".py", ".js", ".html"}
        for name in re.findall(rf"{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]", path.read_text())
        if name not in SETTING_NAMES
    }
    assert not stray, sorted(stray)
