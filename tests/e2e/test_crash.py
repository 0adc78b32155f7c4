"""SIGKILL under load: every event that got a 202 is stored exactly once after a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BATCH = 200


class Producer(threading.Thread):
    """Posts batches with fresh ids until stopped, remembering what got a 202."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.accepted: list[str] = []
        self.stop_event = threading.Event()
        self.failures = 0

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop_event.is_set() and self.failures < 50:
                events = [flight_event(n + i, prefix="crash") for i in range(BATCH)]
                n += BATCH
                body = b"\n".join(orjson.dumps(e) for e in events)
                try:
                    answer = client.post(
                        "/v1/datasets/flights/events",
                        content=body,
                        headers={"Content-Type": "application/x-ndjson"},
                    )
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                if answer.status_code == 202:
                    self.accepted.extend(answer.json()["ids"])


def duplicates_seen(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('slipstream_events_duplicate_total{dataset="flights"}'):
            return float(line.split()[-1])
    return 0.0


def test_sigkill_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    producer = Producer(server.url)
    producer.start()
    try:
        wait_until(lambda: len(producer.accepted) >= 4000, timeout=60, what="4000 accepted events")
        server.kill()  # mid-load: requests in flight, batches leased, writes under way
    finally:
        producer.stop_event.set()
        producer.join(30)
    accepted = list(producer.accepted)
    assert len(accepted) == len(set(accepted))

    restarted = ServerProcess(tmp_path)
    restarted.port, restarted.url = server.port, server.url
    restarted.start()
    try:
        with restarted.client() as client:

            def all_there() -> bool:
                return set(accepted) <= set(stored_ids(client))

            wait_until(all_there, timeout=60, interval=0.5, what="every accepted event stored")
            ids = stored_ids(client)
            assert len(ids) == len(set(ids)), "an event was stored twice"

            # The same ids posted again change nothing.
            again = [flight_event(int(i.split("-")[1]), prefix="crash") for i in accepted[:1000]]
            answer = client.post(
                "/v1/datasets/flights/events",
                content=b"\n".join(orjson.dumps(e) for e in again),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 202
            wait_until(
                lambda: duplicates_seen(client) >= 1000,
                timeout=30,
                what="the re-posted events to reach the store",
            )
            after = stored_ids(client)
            assert len(after) == len(ids)
            assert len(after) == len(set(after))
    finally:
        restarted.kill()
