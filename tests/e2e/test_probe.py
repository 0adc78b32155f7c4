"""`slipstream probe` against a real server: one-shot, loop with /metrics, failures, exclusion."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until
from tests.services import free_port, service_missing

pytestmark = pytest.mark.e2e
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")


def probe_args(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "slipstream", "probe", "--url", url, *args]


def probe(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        probe_args(url, "--dataset", "flights", "--once", *args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def runs(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], result: str) -> float:
    labels = frozenset({("dataset", "flights"), ("result", result)})
    return metrics.get(("slipstream_probe_runs_total", labels), 0.0)


@pytest.fixture
def loop() -> Iterator[list[subprocess.Popen[str]]]:
    """Loop-mode probes started by a test; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start_loop(
    loop: list[subprocess.Popen[str]], url: str, metrics_port: int, log: Path
) -> subprocess.Popen[str]:
    with log.open("w") as out:
        process = subprocess.Popen(
            probe_args(
                url,
                "--dataset",
                "flights",
                "--interval",
                "0.2",
                "--timeout",
                "5",
                "--metrics-port",
                str(metrics_port),
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    loop.append(process)
    return process


def test_once_reports_ok_and_the_probe_event_stays_out_of_user_reads(
    server: ServerProcess,
) -> None:
    with server.client() as client:
        assert client.post("/v1/datasets/flights/events", json=flight_event(1)).status_code == 202
        wait_until(lambda: client.get("/v1/datasets/flights/events/ev-0000001").status_code == 200)

        result = probe(server.url)

        assert result.returncode == 0, result.stdout + result.stderr
        line = result.stdout.strip()
        assert line.startswith("ok flights probe-"), line
        assert " round trip " in line
        probe_id = line.split()[2]
        got = client.get(f"/v1/datasets/flights/events/{probe_id}")
        assert got.status_code == 200
        assert got.json()["id"] == probe_id
        listed = client.get("/v1/datasets/flights/events").json()["items"]
        assert [item["id"] for item in listed] == ["ev-0000001"]
        stats = client.get("/v1/datasets/flights/stats", params={"bucket": "day"}).json()
        assert sum(item["count"] for item in stats["items"]) == 1
        (flights,) = client.get("/v1/datasets").json()["datasets"]
        assert flights["rows"] == 1


def test_loop_serves_metrics_and_stops_cleanly_on_sigterm(
    server: ServerProcess, loop: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    port = free_port()
    process = start_loop(loop, server.url, port, tmp_path / "probe.log")

    def two_ok_runs() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        scraped = scrape(f"http://127.0.0.1:{port}/metrics")
        return scraped if runs(scraped, "ok") >= 2 else {}

    metrics = wait_until(
        two_ok_runs, timeout=30, what=f"two ok runs on :{port} ({tmp_path / 'probe.log'})"
    )
    process.send_signal(signal.SIGTERM)

    assert process.wait(15) == 0, (tmp_path / "probe.log").read_text()
    assert runs(metrics, "failed") == runs(metrics, "mismatch") == 0
    count = ("slipstream_probe_round_trip_seconds_count", frozenset({("dataset", "flights")}))
    assert metrics[count] >= 2
    last = ("slipstream_probe_last_success_timestamp_seconds", frozenset({("dataset", "flights")}))
    assert metrics[last] > 0
    assert "Traceback" not in (tmp_path / "probe.log").read_text()


def test_nothing_listening_fails_once_and_the_loop_carries_on(
    loop: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = probe(url)

    assert result.returncode == 1
    assert result.stdout.strip() == f"failed flights: cannot connect to {url}: connection refused"
    assert "Traceback" not in result.stderr

    port = free_port()
    process = start_loop(loop, url, port, tmp_path / "probe.log")
    wait_until(
        lambda: runs(scrape(f"http://127.0.0.1:{port}/metrics"), "failed") >= 3,
        what="three failed runs counted",
    )
    assert process.poll() is None  # a failed run never ends the loop
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert "connection refused" in (tmp_path / "probe.log").read_text()


def test_every_field_type_round_trips_and_keys_are_checked(tmp_path: Path) -> None:
    (tmp_path / "datasets.yaml").write_text(
        """datasets:
  - name: readings
    key: reading_id
    event_time: taken_at
    fields:
      - {name: reading_id, type: string}
      - {name: taken_at, type: timestamp, required: true}
      - {name: sensor, type: string, required: true}
      - {name: count, type: int}
      - {name: value, type: float}
      - {name: healthy, type: bool}
      - {name: calibrated_at, type: timestamp}
      - {name: unit, type: enum, values: [c, f, k], required: true}
      - {name: raw, type: json}
"""
    )
    keys = "reader-key-1:read,probe-key-01:read+ingest"
    env = {"SLIPSTREAM_DATASETS": str(tmp_path / "datasets.yaml"), "SLIPSTREAM_API_KEYS": keys}
    server = ServerProcess(tmp_path, env).start()
    try:
        ok = probe(
            server.url, "--dataset", "readings", env={"SLIPSTREAM_PROBE_API_KEY": "probe-key-01"}
        )
        read_only = probe(server.url, "--dataset", "readings", "--api-key", "reader-key-1")
        missing = probe(server.url, "--dataset", "flights", "--api-key", "probe-key-01")
    finally:
        server.kill()

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok readings probe-")
    assert read_only.returncode == 1
    assert read_only.stdout.startswith("failed readings probe-"), read_only.stdout
    assert (
        ": POST /v1/datasets/readings/events answered 403: this API key lacks the 'ingest' scope"
        in read_only.stdout
    )
    assert missing.returncode == 1
    assert missing.stdout.strip() == (
        f"failed flights: {server.url} serves no dataset 'flights' (it serves: readings)"
    )


def test_once_pushes_and_counters_keep_growing_across_runs(
    server: ServerProcess, tmp_path: Path
) -> None:
    if PUSHGATEWAY is None:
        service_missing("pushgateway", "no prometheus-pushgateway binary on PATH")
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    with (tmp_path / "pushgateway.log").open("w") as log:
        gateway = subprocess.Popen(
            [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: scrape(f"{gateway_url}/metrics") != {}, what="the pushgateway")
        first = probe(server.url, "--pushgateway", gateway_url, "--job", "probe_test")
        second = probe(server.url, "--pushgateway", gateway_url, "--job", "probe_test")
        failed = probe(
            f"http://127.0.0.1:{free_port()}", "--pushgateway", gateway_url, "--job", "probe_test"
        )
        pushed = scrape(f"{gateway_url}/metrics")
    finally:
        gateway.kill()
        gateway.wait(10)

    assert (first.returncode, second.returncode, failed.returncode) == (0, 0, 1), (
        first.stdout + first.stderr + second.stdout + second.stderr
    )
    group = {("dataset", "flights"), ("job", "probe_test"), ("instance", "")}

    def value(name: str, **labels: str) -> float:
        return pushed[(name, frozenset(group | set(labels.items())))]

    assert value("slipstream_probe_runs_total", result="ok") == 2
    assert value("slipstream_probe_runs_total", result="failed") == 1
    assert value("slipstream_probe_round_trip_seconds_count") == 2
    assert value("slipstream_probe_last_success_timestamp_seconds") > 0
