"""/docs from a real `slipstream up`: every file it loads is served by the app, and Swagger UI
draws the API in a headless Chromium under the app's Content-Security-Policy."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.test_status_page import chromium_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REFERENCE = re.compile(r"""(?:src|href|data-openapi)="([^"]*)\"""")


def test_docs_and_every_file_it_references_come_from_the_server(server: ServerProcess) -> None:
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        references = REFERENCE.findall(page.text)
        assert len(references) >= 4
        for reference in references:
            assert not re.search(r"//|:", reference), reference  # relative links only
            answer = client.get(urljoin(f"{server.url}/docs", reference))
            assert answer.status_code == 200, reference
            assert answer.content, reference


def test_docs_draws_the_api_without_the_network(server: ServerProcess, tmp_path: Path) -> None:
    with chromium_page(tmp_path / "chromium-profile") as (page, console_errors):
        offsite: list[str] = []
        page.on(
            "request", lambda r: None if r.url.startswith(server.url) else offsite.append(r.url)
        )
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "Slipstream" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock").count() >= 10  # the operations are drawn
    assert offsite == [], "the page loaded something the app does not serve"
    assert console_errors == []  # a Content-Security-Policy violation is logged as one
