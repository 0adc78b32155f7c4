"""The `slipstream` commands as a user runs them, against real processes."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.e2e.commands import slipstream
from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until
from tests.services import port_open, service_missing

pytestmark = pytest.mark.e2e


def test_a_bad_setting_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {"SLIPSTREAM_LEASE_SECONDS": "forever"}
    for command in (["up"], ["check"]):
        result = slipstream(*command, cwd=tmp_path, env=env)
        assert result.returncode != 0
        assert "SLIPSTREAM_LEASE_SECONDS='forever': Input should be a valid number" in (
            result.stdout + result.stderr
        )
        assert "Traceback" not in result.stderr


def test_a_backend_that_cannot_open_fails_at_start_with_one_line(tmp_path: Path) -> None:
    # A DuckDB setting passes the URL's checks (DuckDB knows the name) and fails at open.
    env = {"SLIPSTREAM_STORE_URL": "duckdb:///./warehouse.duckdb?memory_limit=lots"}
    result = slipstream("up", "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "cannot start: cannot open DuckDB database" in output
    assert "Memory must have a number" in output
    assert "Traceback" not in output


def test_a_bad_backend_option_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {"SLIPSTREAM_STORE_URL": "duckdb:///./warehouse.duckdb?threads=lots"}
    result = slipstream("up", "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: SLIPSTREAM_STORE_URL='duckdb:///./warehouse.duckdb?threads=lots': "
        "option threads='lots' must be a whole number"
    ]


def test_a_bad_datasets_file_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text("datasets:\n  - name: x\n    fields: []\n")
    result = slipstream("up", cwd=tmp_path, env={"SLIPSTREAM_DATASETS": "ds.yaml"})
    assert result.returncode == 2
    assert "ds.yaml: at datasets.0.event_time: Field required" in result.stderr


def test_publish_feeds_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        events = [flight_event(i, prefix="pub") for i in range(500)]
        (tmp_path / "events.ndjson").write_bytes(  # a blank first line: lines are not events
            b"\n" + b"\n".join(orjson.dumps(e) for e in events) + b"\n{bad\n"
        )
        result = slipstream("publish", "flights", "events.ndjson", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "500" in result.stdout
        queue = tmp_path / "data" / "queue.db"
        assert f"broker: local:///./data/queue.db ({queue})" in result.stdout
        assert "  line 502: not valid JSON: " in result.stderr  # the file's line, not event 500
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
        broken = slipstream("publish", "flights", "-", cwd=tmp_path, stdin=b'[{"id": "x",\n')
        assert broken.returncode == 2
        assert broken.stderr == (
            "error: standard input: not valid JSON: unexpected end of data at line 2, column 1\n"
        )
    finally:
        server.kill()


def test_publish_elsewhere_refuses_to_make_a_queue_no_server_reads(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server").start()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    event = orjson.dumps(flight_event(1, prefix="far"))
    try:
        refused = slipstream("publish", "flights", "-", cwd=elsewhere, stdin=event)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"error: no queue at {elsewhere}/data/queue.db (")
        assert "relative to this directory" in refused.stderr
        assert "SLIPSTREAM_BROKER_URL=local:////" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert list(elsewhere.iterdir()) == [], "nothing created"

        queue = tmp_path / "server" / "data" / "queue.db"
        named = {"SLIPSTREAM_BROKER_URL": f"local:///{queue}"}  # four slashes: absolute
        result = slipstream("publish", "flights", "-", cwd=elsewhere, stdin=event, env=named)
        assert result.returncode == 0, result.stderr
        assert f"broker: local:///{queue} ({queue})" in result.stdout
        with server.client() as client:
            wait_until(
                lambda: client.get("/v1/datasets/flights/events/far-0000001").status_code == 200,
                what="the event published from elsewhere, stored by the server",
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
        [newest] = client.get("/v1/datasets/flights/events", params={"limit": 1}).json()["items"]
        assert datetime.fromisoformat(newest["event_time"]) <= datetime.now(UTC)


def test_simulate_starts_where_asked(server: ServerProcess, tmp_path: Path) -> None:
    args = ["--rate", "200", "--duration", "1", "--url", server.url, "--seed", "5"]
    result = slipstream("simulate", *args, "--start", "2025-01-02T03:00:00Z", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"event times\s+│\s+2025-01-02 03:", result.stdout), result.stdout
    with server.client() as client:
        wait_until(
            lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 200,
            what="the events stored",
        )
        [oldest] = client.get(
            "/v1/datasets/flights/events", params={"until": "2025-01-02T03:10:00Z"}
        ).json()["items"][-1:]
        assert oldest["event_time"].startswith("2025-01-02T03:0")
    bad = slipstream("simulate", *args, "--start", "tomorrow", cwd=tmp_path)
    assert bad.returncode == 2
    assert "expected an RFC 3339 time such as 2026-11-24T06:00:00Z, or now" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_client_commands_send_the_client_key(tmp_path: Path) -> None:
    keys = "producer-2b8e41:ingest,prober-5d1e77:read+ingest"
    server = ServerProcess(tmp_path, env={"SLIPSTREAM_API_KEYS": keys}).start()
    try:
        assert f"Status     {server.url}/status" in server.log()  # the start banner
        run = ["simulate", "--rate", "50", "--duration", "0.5", "--url", server.url]
        sent = slipstream(*run, cwd=tmp_path, env={"SLIPSTREAM_CLIENT_KEY": "producer-2b8e41"})
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "warning" not in sent.stderr

        former = slipstream(*run, cwd=tmp_path, env={"SLIPSTREAM_API_KEY": "producer-2b8e41"})
        assert former.returncode == 0, former.stdout + former.stderr
        assert "SLIPSTREAM_API_KEY is now SLIPSTREAM_CLIENT_KEY" in former.stderr

        probe = ["probe", "--url", server.url, "--dataset", "flights", "--once"]
        probed = slipstream(*probe, cwd=tmp_path, env={"SLIPSTREAM_CLIENT_KEY": "prober-5d1e77"})
        assert probed.returncode == 0, probed.stdout + probed.stderr
    finally:
        server.kill()


def test_publish_of_an_event_over_the_brokers_size_is_one_line(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 4222):
        service_missing("nats", "nothing listens on 127.0.0.1:4222")
    big = orjson.dumps(flight_event(1, prefix="big", gate="g" * (2 * 1024 * 1024)))
    small = orjson.dumps(flight_event(2, prefix="big"))
    url = f"nats://127.0.0.1:4222?prefix=t{uuid.uuid4().hex[:12]}&max_age=3600"
    result = slipstream(
        "publish",
        "flights",
        "-",
        cwd=tmp_path,
        stdin=small + b"\n" + big,
        env={"SLIPSTREAM_BROKER_URL": url},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert "the 0 events before its batch of 1000 were published, the rest not" in result.stderr
