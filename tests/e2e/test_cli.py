"""The `slipstream` commands as a user runs them, against real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until

pytestmark = pytest.mark.e2e


def slipstream(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slipstream", *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        input=stdin.decode() if stdin else None,
        text=True,
        check=False,
    )


def test_check_reports_every_part(tmp_path: Path) -> None:
    result = slipstream("check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for part in ("settings", "datasets", "broker", "store"):
        assert part in result.stdout
    assert "FAILED" not in result.stdout


def test_a_bad_setting_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {"SLIPSTREAM_LEASE_SECONDS": "forever"}
    for command in (["up"], ["check"]):
        result = slipstream(*command, cwd=tmp_path, env=env)
        assert result.returncode != 0
        assert "SLIPSTREAM_LEASE_SECONDS='forever': Input should be a valid number" in (
            result.stdout + result.stderr
        )
        assert "Traceback" not in result.stderr


def test_a_bad_datasets_file_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text("datasets:\n  - name: x\n    fields: []\n")
    result = slipstream("up", cwd=tmp_path, env={"SLIPSTREAM_DATASETS": "ds.yaml"})
    assert result.returncode == 2
    assert "ds.yaml: at datasets.0.event_time: Field required" in result.stderr


def test_publish_feeds_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        events = [flight_event(i, prefix="pub") for i in range(500)]
        (tmp_path / "events.ndjson").write_bytes(
            b"\n".join(orjson.dumps(e) for e in events) + b"\n{bad\n"
        )
        result = slipstream("publish", "flights", "events.ndjson", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "500" in result.stdout
        piped = slipstream(
            "publish",
            "flights",
            "-",
            cwd=tmp_path,
            stdin=orjson.dumps([flight_event(900, prefix="pub")]),
        )
        assert piped.returncode == 0, piped.stderr
        with server.client() as client:
            wait_until(
                lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 501,
                what="501 rows published from another process",
            )
            wait_until(
                lambda: len(client.get("/v1/datasets/flights/quarantine").json()["items"]) == 1,
                what="the bad line in quarantine",
            )
    finally:
        server.kill()


def test_simulate_posts_valid_flights(server: ServerProcess, tmp_path: Path) -> None:
    result = slipstream(
        "simulate", "--rate", "400", "--duration", "2", "--url", server.url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with server.client() as client:
        rows = wait_until(
            lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"],
            what="simulated events stored",
        )
        assert rows > 400
        assert client.get("/v1/datasets/flights/quarantine").json()["items"] == []
