"""A hot dataset does not starve a quiet one: each dataset has its own consumer, so a quiet
dataset's events are stored while a flooded one still has tens of thousands queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FLOOD = 60_000
QUIET = 20
DATASETS = """datasets:
  - name: {name}
    key: id
    event_time: at
    fields:
      - {{name: id, type: string}}
      - {{name: at, type: timestamp, required: true}}
      - {{name: n, type: int}}
"""


def serve(tmp_path: Path, names: list[str], batch_size: int, admission: str) -> ServerProcess:
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "datasets:\n" + "".join(DATASETS.format(name=n).removeprefix("datasets:\n") for n in names)
    )
    env = {
        "SLIPSTREAM_DATASETS": str(path),
        "SLIPSTREAM_BATCH_SIZE": str(batch_size),
        "SLIPSTREAM_ADMISSION_SECONDS": admission,
    }
    return ServerProcess(tmp_path, env).start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Small batches make the flood take seconds to drain, long enough to see the quiet
    # dataset overtake it. Admission by freshness would turn the flood away (that is what it is
    # for; the test below); here the flood is meant to be queued.
    process = serve(tmp_path, ["busy", "quiet"], batch_size=50, admission="0")
    yield process
    process.kill()


def ndjson(prefix: str, start: int, count: int) -> bytes:
    return b"\n".join(
        orjson.dumps({"id": f"{prefix}-{n}", "at": f"2026-11-24T10:00:{n % 60:02d}Z", "n": n})
        for n in range(start, start + count)
    )


def overview(client: httpx.Client) -> dict[str, dict[str, int]]:
    datasets = client.get("/v1/datasets").json()["datasets"]
    return {d["name"]: {"rows": d["rows"], "backlog": d["backlog"]} for d in datasets}


def test_a_quiet_dataset_is_not_queued_behind_a_flooded_one(server: ServerProcess) -> None:
    headers = {"Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, FLOOD, 5_000):
            answer = client.post(
                "/v1/datasets/busy/events", content=ndjson("b", start, 5_000), headers=headers
            )
            assert answer.status_code == 202, answer.text
        # The backlog figure is refreshed in the background: wait for it rather than read it once.
        wait_until(
            lambda: overview(client)["busy"]["backlog"] > 10_000,
            what="the flood to show as a backlog of over 10,000 (it drained too fast otherwise)",
        )

        answer = client.post(
            "/v1/datasets/quiet/events", content=ndjson("q", 0, QUIET), headers=headers
        )
        assert answer.status_code == 202, answer.text
        seen = wait_until(
            lambda: (state := overview(client))["quiet"]["rows"] == QUIET and state,
            what="the quiet dataset's events to be stored",
        )
        assert seen["busy"]["rows"] < FLOOD, f"the quiet dataset waited for the flood: {seen}"

        # And the flood itself is stored in full, nothing lost, nothing doubled.
        wait_until(
            lambda: overview(client)["busy"]["rows"] == FLOOD,
            timeout=120,
            what="the flood to be stored",
        )


@pytest.fixture
def admitting(tmp_path: Path) -> Iterator[ServerProcess]:
    process = serve(tmp_path, ["busy"], batch_size=200, admission="1")
    yield process
    process.kill()


def test_a_flood_is_admitted_as_fast_as_it_drains_and_stored_once(
    admitting: ServerProcess,
) -> None:
    """An unpaced producer is refused, with the drain time and a Retry-After, once the backlog
    is past what drains within the objective; after it has drained the producer is admitted
    again, and every event accepted is stored once."""
    headers = {"Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=admitting.url, timeout=60) as client:
        sent = 0
        refusal = None
        while refusal is None and sent < 20 * FLOOD:  # unpaced, until admission says no
            answer = client.post(
                "/v1/datasets/busy/events", content=ndjson("b", sent, 5_000), headers=headers
            )
            if answer.status_code == 503:
                refusal = answer
            else:
                assert answer.status_code == 202, answer.text
                sent += 5_000
        assert refusal is not None, f"{sent} events sent unpaced and none refused"
        assert "of draining" in refusal.json()["error"]["message"]
        assert 1 <= int(refusal.headers["retry-after"]) <= 30
        wait_until(
            lambda: overview(client)["busy"]["backlog"] < 10_000,
            timeout=120,
            what="the backlog to drain after the refusal",
        )
        again = client.post(
            "/v1/datasets/busy/events", content=ndjson("b", sent, 5_000), headers=headers
        )
        assert again.status_code == 202, again.text
        sent += 5_000
        wait_until(
            lambda: overview(client)["busy"]["rows"] == sent,
            timeout=120,
            what="every accepted event to be stored",
        )
