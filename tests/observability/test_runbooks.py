"""Every alert has a runbook with the four sections, its runbook_url points at it, and the index
lists them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slipstream.slo.rules import alert_groups
from slipstream.slo.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
SPEC = load_spec(ROOT / "observability" / "slo" / "slos.yaml")
ALERTS = {rule["alert"]: rule for group in alert_groups(SPEC) for rule in group["rules"]}
SECTIONS = ("What it means", "Confirm", "Mitigate", "Verify recovery")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_has_a_runbook_with_the_four_sections(alert: str) -> None:
    path = RUNBOOKS / f"{alert}.md"
    assert path.is_file(), f"no runbook for {alert}: write docs/runbooks/{alert}.md"
    text = path.read_text()
    assert text.startswith(f"# {alert}\n")
    found = sections(text)
    assert tuple(found) == SECTIONS, f"{path.name}: sections {list(found)}, expected {SECTIONS}"
    for title, body in found.items():
        assert len(body.split()) >= 20, f"{path.name}: section {title!r} is nearly empty"
    # Confirming means running something: a query, a request or a command.
    assert "```" in found["Confirm"], f"{path.name}: Confirm has no PromQL or command"
    severity = ALERTS[alert]["labels"]["severity"]
    assert f"**Severity:** {severity}" in text


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_runbook_url_points_at_the_runbook(alert: str) -> None:
    url = ALERTS[alert]["annotations"]["runbook_url"]
    prefix = SPEC.runbook_base_url + "/"
    assert url.startswith(prefix)
    assert SPEC.runbook_base_url.endswith("/docs/runbooks")
    assert (RUNBOOKS / url.removeprefix(prefix)).is_file()


def test_no_runbook_for_an_alert_that_does_not_exist() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert sorted(pages - set(ALERTS)) == []


def test_the_index_links_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for alert in ALERTS:
        assert f"]({alert}.md)" in index, f"docs/runbooks/README.md does not link {alert}"


def test_links_between_runbooks_resolve() -> None:
    for page in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).resolve().is_file(), f"{page.name} links {target}"
