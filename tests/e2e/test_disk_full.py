"""A full disk under `slipstream up`: 503s and /readyz name it, and once space is freed the same
process resumes by itself, with every event that got a 202 stored exactly once.

The data directory is a small tmpfs the test mounts (root only): the disk fills for real, with a
filler file, while a producer posts. The store checkpoints after every commit (a tiny
`checkpoint_threshold`), so the disk usually fills during a checkpoint, the failure after which
DuckDB invalidates its database and the store must reopen it (tests/unit/test_duckdb_reopen.py
forces that case every time).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until
from tests.services import service_missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BATCH = 200
PACE = 0.02  # seconds between two posts
DISK_SIZE = "64m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE mounted for this test alone."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        service_missing("a tmpfs of our own", "mounting one needs root")
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount)]
    try:
        mounted = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        service_missing("a tmpfs of our own", f"`mount` failed: {exc}")
    if mounted.returncode != 0:
        service_missing("a tmpfs of our own", f"`mount` refused: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


class Producer(threading.Thread):
    """Posts batches with fresh ids until stopped: what got a 202, and every 503's message."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.accepted: list[str] = []
        self.refusals: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop_event.is_set():
                body = b"\n".join(
                    orjson.dumps(flight_event(n + i, prefix="full")) for i in range(BATCH)
                )
                n += BATCH
                answer = client.post(
                    "/v1/datasets/flights/events",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson"},
                )
                if answer.status_code == 202:
                    self.accepted.extend(answer.json()["ids"])
                else:
                    assert answer.status_code == 503, answer.text
                    self.refusals.append(answer.json()["error"]["message"])
                # A pace, so that the queue cannot fill the freed disk again before the end.
                self.stop_event.wait(PACE)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk has no room left."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:

        def write_forever() -> None:
            while True:
                out.write(b"\0" * 65536)

        with pytest.raises(OSError, match="No space left"):
            write_forever()
    return filler


def test_a_full_disk_is_named_and_the_server_resumes_without_a_restart(
    small_disk: Path,
) -> None:
    store = "duckdb:///./data/warehouse.duckdb?checkpoint_threshold=1KB"
    server = ServerProcess(small_disk, env={"SLIPSTREAM_STORE_URL": store}).start()
    producer = Producer(server.url)
    producer.start()
    client = server.client()
    try:
        wait_until(lambda: len(producer.accepted) >= 20 * BATCH, 60, what="events accepted")
        filler = fill(small_disk)

        def refused_for_the_disk() -> bool:
            return any("disk full" in message for message in producer.refusals)

        wait_until(refused_for_the_disk, 60, what="a 503 naming the full disk")
        assert all("disk full" in message for message in producer.refusals), producer.refusals

        def not_ready_for_the_disk() -> dict[str, str] | None:
            answer = client.get("/readyz")
            body: dict[str, str] = answer.json()
            return body if answer.status_code == 503 and "disk full" in body["reason"] else None

        body = wait_until(not_ready_for_the_disk, 60, what="/readyz naming the full disk")
        assert body["status"] == "not ready"
        assert str(small_disk) in body["reason"], body

        filler.unlink()
        wait_until(lambda: client.get("/readyz").status_code == 200, 90, what="ready again")
        accepted_after = len(producer.accepted)
        wait_until(lambda: len(producer.accepted) > accepted_after, 60, what="posts accepted again")
        producer.stop_event.set()
        producer.join(30)
        assert client.get("/v1/datasets").status_code == 200

        accepted = producer.accepted
        assert len(accepted) == len(set(accepted))

        def all_stored() -> list[str] | None:
            ids = stored_ids(client)
            return ids if set(ids) >= set(accepted) else None

        ids = wait_until(all_stored, 120, interval=0.5, what="every accepted event stored")
        assert len(ids) == len(set(ids)), "an event was stored twice"
        assert set(ids) == set(accepted), "an event that got a 503 was stored"
        assert server.process is not None
        assert server.process.poll() is None  # the same process throughout: no restart
    finally:
        producer.stop_event.set()
        producer.join(30)
        client.close()
        server.kill()
