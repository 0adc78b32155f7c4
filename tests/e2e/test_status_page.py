"""The status page in a real headless Chromium against a real `slipstream up` with traffic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until
from tests.services import service_missing
from tests.tools import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "artifacts" / "status-page.png"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NDJSON = {"Content-Type": "application/x-ndjson"}


class Traffic:
    """Posts a batch of events (and reads a page) each time it is asked whether enough is seen."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = server.client()
        self.sent = 0

    def post_batch(self) -> None:
        events = [flight_event(self.sent + i, prefix="status") for i in range(100)]
        self.sent += len(events)
        body = b"\n".join(orjson.dumps(e) for e in events)
        answer = self.client.post("/v1/datasets/flights/events", content=body, headers=NDJSON)
        assert answer.status_code == 202, answer.text
        assert (
            self.client.get("/v1/datasets/flights/events", params={"limit": 5}).status_code == 200
        )

    def steps_with_writes(self, wanted: int) -> bool:
        self.post_batch()
        series = self.client.get("/status/series").json()["series"]
        return sum(1 for rate in series["written_per_s"] if rate > 0) >= wanted


@contextmanager
def chromium_page(profile: Path) -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium profile, and the console errors it collects."""
    chromium = require_tool("chromium", "install it with `apt-get install chromium`")
    try:
        from playwright import sync_api as playwright_api
    except ImportError:
        service_missing("playwright", "pip install playwright (it drives the chromium above)")
    errors: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()


def page_shows(page: Any, expression: str) -> None:
    """Wait until `expression` is true in the page. Playwright's wait_for_function polls with
    eval(), which the app's Content-Security-Policy forbids; page.evaluate is not subject to it."""
    wait_until(lambda: page.evaluate(expression), timeout=30, interval=0.1, what=expression)


def test_the_status_page_draws_its_charts_in_a_browser(
    server: ServerProcess, tmp_path: Path
) -> None:
    # The sampler's step is 5 s: keep the traffic going until three steps have carried some,
    # so the charts draw lines rather than lone points.
    traffic = Traffic(server)
    with traffic.client:
        wait_until(lambda: traffic.steps_with_writes(3), timeout=60, interval=0.2, what="3 steps")

    with chromium_page(tmp_path / "chromium-profile") as (page, console_errors):
        offsite: list[str] = []
        page.on(
            "request", lambda r: None if r.url.startswith(server.url) else offsite.append(r.url)
        )
        page.goto(f"{server.url}/status")
        # Poll the DOM until the page flags a draw with data, or time out.
        page_shows(
            page, "document.body.dataset.rendered === 'true' && +document.body.dataset.points >= 3"
        )
        assert page.locator("section.chart canvas").count() == 5
        assert "ingested/s" in page.locator("section[data-chart=throughput] .now").inner_text()
        assert "Last 60 min" in page.locator("#state").inner_text()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert offsite == [], "the page loaded something the app does not serve"
    assert console_errors == []
    assert SCREENSHOT.stat().st_size > 10_000


def test_with_keys_the_page_asks_for_a_read_key_then_draws(tmp_path: Path) -> None:
    keys = "status-reader-1:read,status-ingest-1:ingest"
    server = ServerProcess(tmp_path / "server", env={"SLIPSTREAM_API_KEYS": keys}).start()
    try:
        with chromium_page(tmp_path / "chromium-profile") as (page, console_errors):
            page.goto(f"{server.url}/status")
            form = page.locator("#key-form")
            form.wait_for(state="visible", timeout=30_000)
            page.fill("#key", "status-ingest-1")
            page.click("#key-form button")
            page_shows(page, "document.getElementById('key-error').textContent.includes('read')")
            page.fill("#key", "status-reader-1")
            page.click("#key-form button")
            page_shows(page, "document.body.dataset.rendered === 'true'")
            assert form.is_hidden()
        # The browser logs the refused requests (401, 403) as errors; nothing else may fail.
        assert [e for e in console_errors if "401" not in e and "403" not in e] == []
    finally:
        server.kill()
