"""`schemathesis run`, every phase and every check, against a real server with API keys.

Requests generated from the server's own /openapi.json, valid and invalid, with and without the
key: no 5xx, no answer (status, media type, headers, body) the description does not describe, no
request it calls valid refused nor one it calls invalid taken, no route that ignores its key.
The run is tests/e2e/schemathesis.toml's, which says what it adds and why; nothing is excluded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = f"schemathesis-{uuid.uuid4().hex}"
SEED_EVENT = {  # the id tests/e2e/schemathesis.toml offers to reads by id
    "id": "schemathesis-seed-1",
    "flight_id": "LA800-2026-11-24",
    "status": "landed",
    "event_time": "2026-11-24T10:00:00Z",
}
MAX_EXAMPLES = 100  # per operation and phase: about a minute on two cores


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "SLIPSTREAM_API_KEYS": f"{KEY}:read+ingest+admin",
        # Open, so the run reaches past the door of /push/pubsub (it can forge no OIDC token).
        "SLIPSTREAM_PUBSUB_PUSH_OPEN": "true",
    }
    server = ServerProcess(tmp_path_factory.mktemp("schemathesis"), env).start()
    yield server
    server.kill()


def test_schemathesis_finds_nothing_wrong(live: ServerProcess) -> None:
    with live.client(headers={"X-API-Key": KEY}) as client:
        assert client.post("/v1/datasets/flights/events", json=SEED_EVENT).status_code == 202
        wait_until(
            lambda: client.get(f"/v1/datasets/flights/events/{SEED_EVENT['id']}").is_success,
            what="the seed event stored",
        )
        operations = sum(len(item) for item in client.get("/openapi.json").json()["paths"].values())
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"),
            f"{live.url}/openapi.json",
            *("--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--no-color"),
        ],
        cwd=ROOT,  # where the hooks module is imported from
        env={**os.environ, "SLIPSTREAM_TEST_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None, report[-5_000:]
    assert int(tested.group(1)) == operations, report[-5_000:]
    assert "unhandled error" not in live.log(), live.log()[-5_000:]
    assert httpx.get(f"{live.url}/healthz").status_code == 200
