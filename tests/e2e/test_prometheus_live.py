"""A real Prometheus scrapes a real `slipstream up`: the rules evaluate cleanly, the dashboards query.

Prometheus runs every file of observability/prometheus/rules against live series, so an
expression that parses but fails on real data (many-to-many matching, a wrong label) shows up
here rather than in production; every dashboard expression then runs through /api/v1/query.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until
from tests.observability.test_dashboards import (
    RULES,
    dashboard_exprs,
    load_dashboards,
    panels,
    substitute,
)
from tests.services import free_port
from tests.tools import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEVER = "0001-01-01T00:00:00Z"  # lastEvaluation of a rule Prometheus has not run yet
# Overview panels that must show data once the server has answered some traffic.
PANELS_WITH_DATA = (
    "Requests per second by route",
    "Latency p99 by route",
    "Events per second",
    "Backends",
)


class PrometheusProcess:
    """/usr/bin/prometheus in its own directory, scraping one target every second."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.rule_files: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        rules = self.workdir / "rules"
        rules.mkdir(parents=True)
        for source in sorted(p for p in RULES.glob("*") if p.is_file()):
            self.rule_files.append(Path(shutil.copy(source, rules / source.name)))
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": "slipstream-api",
                    "static_configs": [
                        {"targets": [self.target], "labels": {"env": "test", "system": "e2e"}}
                    ],
                }
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout: float = 60.0) -> PrometheusProcess:
        config = self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout, interval=0.2, what=f"{self.url}/-/ready ({self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def api(self, path: str, **params: str) -> Any:
        response = httpx.post(f"{self.url}/api/v1/{path}", data=params, timeout=30)
        return response.json()

    def query(self, expr: str) -> list[Any]:
        body = self.api("query", query=expr)
        assert body["status"] == "success", f"{expr}: {body.get('errorType')}: {body.get('error')}"
        result: list[Any] = body["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=30).json()
        return [
            {**rule, "group": group["name"], "interval": group["interval"]}
            for group in body["data"]["groups"]
            for rule in group["rules"]
        ]


def drive_traffic(client: httpx.Client, prefix: str) -> None:
    """Ingest (with one invalid event), read by id, list, stats, quarantine, and a 404."""
    events = [flight_event(n, prefix=prefix) for n in range(20)]
    events.append(flight_event(20, prefix=prefix, status="teleported"))
    response = client.post(
        "/v1/datasets/flights/events",
        content="\n".join(json.dumps(e) for e in events),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 20
    last = f"/v1/datasets/flights/events/{prefix}-{19:07d}"
    wait_until(lambda: client.get(last).status_code == 200, what=f"{last} to be stored")
    for n in range(5):
        assert client.get(f"/v1/datasets/flights/events/{prefix}-{n:07d}").status_code == 200
    assert client.get("/v1/datasets/flights/events", params={"limit": 10}).status_code == 200
    assert client.get("/v1/datasets/flights/stats", params={"bucket": "hour"}).status_code == 200
    assert client.get("/v1/datasets/flights/quarantine").status_code == 200
    assert client.get("/v1/datasets").status_code == 200
    assert client.get("/v1/datasets/flights/events/no-such-event").status_code == 404


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("slipstream")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def prometheus(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    binary = require_tool("prometheus", "apt-get install prometheus (Debian) puts it in /usr/bin")
    process = PrometheusProcess(
        binary, tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{server.port}"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def scraped(server: ServerProcess, prometheus: PrometheusProcess) -> PrometheusProcess:
    """Prometheus once rates over the traffic are defined: a counter must rise between scrapes."""
    selector = 'slipstream_http_requests_total{code="404", env="test", system="e2e"}'
    with server.client() as client:
        drive_traffic(client, "first")
        wait_until(lambda: prometheus.query(selector), interval=0.2, what="a scrape of the 404")
        drive_traffic(client, "second")
    wait_until(
        lambda: prometheus.query(f"rate({selector}[5m]) > 0"),
        interval=0.2,
        what="a rate over the scraped 404s",
    )
    return prometheus


def test_every_rule_evaluates_cleanly(scraped: PrometheusProcess) -> None:
    if not scraped.rule_files:
        pytest.skip(f"no rule files in {RULES} (slipstream slo generate writes them)")
    before = [r["lastEvaluation"] for r in scraped.rules()]
    assert before, f"prometheus loaded no rules from {scraped.rule_files}:\n{scraped.log()}"
    longest = max(r["interval"] for r in scraped.rules())

    def evaluated_since() -> list[dict[str, Any]]:
        """The rules, once each has run again after the traffic was scraped (the order is fixed)."""
        rules = scraped.rules()
        done = all(
            r["lastEvaluation"] not in (NEVER, b) for r, b in zip(rules, before, strict=True)
        )
        return rules if done else []

    rules = wait_until(
        evaluated_since, timeout=2 * longest + 30, interval=0.5, what="every rule group to run"
    )
    failing = [
        f"{r['group']}/{r['name']} {r.get('labels', {})}: {r['health']}: {r.get('lastError')}"
        for r in rules
        if r["health"] != "ok"
    ]
    assert not failing, "rules failing on live data:\n" + "\n".join(failing)


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_every_dashboard_query_runs(scraped: PrometheusProcess, name: str) -> None:
    errors = []
    for where, expr in dashboard_exprs(load_dashboards()[name]):
        body = scraped.api("query", query=substitute(expr))
        if body["status"] != "success":
            errors.append(f"{where}: {body.get('errorType')}: {body.get('error')}\n  {expr}")
    assert not errors, "\n".join(errors)


def test_overview_panels_show_the_traffic(scraped: PrometheusProcess) -> None:
    board = load_dashboards()["slipstream-overview.json"]
    by_title = {p["title"]: p for p in panels(board)}
    for title in PANELS_WITH_DATA:
        for target in by_title[title]["targets"]:
            assert scraped.query(substitute(target["expr"])), f"{title!r} shows no data"
