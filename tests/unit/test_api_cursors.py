"""Cursors of the event and quarantine lists through the API: signed, so a cursor altered in any
byte is a 400; keyed by the deployment, so they outlive a restart and work on every replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.runtime import Runtime
from tests import helpers
from tests.helpers import flight_event, wait_until

EVENTS = "/v1/datasets/flights/events"
QUARANTINE = "/v1/datasets/flights/quarantine"
KEYS = "reader-key-1:read+ingest"
AS_READER = {"X-API-Key": "reader-key-1"}


def make_client(tmp_path: Path, **values: Any) -> TestClient:
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        **values,
    )
    return TestClient(create_app(Runtime(settings)))


def page(client: TestClient, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=AS_READER)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refusal(client: TestClient, path: str, cursor: str, **params: Any) -> str:
    answer = client.get(path, params={"cursor": cursor, **params}, headers=AS_READER)
    assert answer.status_code == 400, answer.text
    message: str = answer.json()["error"]["message"]
    return message


def fill(client: TestClient) -> None:
    events: list[Any] = [flight_event(i) for i in range(5)]
    events += [{"flight_id": f"X{i}", "status": "teleported"} for i in range(3)]
    client.post(EVENTS, json=events, headers=AS_READER)
    wait_until(
        lambda: (
            len(page(client, EVENTS)["items"]) == 5 and len(page(client, QUARANTINE)["items"]) == 3
        ),
        what="5 rows and 3 quarantined events",
    )


def test_cursors_outlive_a_restart_and_are_refused_by_another_deployment(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys=KEYS) as client:
        fill(client)
        events = page(client, EVENTS, limit=2, status="departed")
        assert events["next_cursor"] is None  # one departed event: no next page
        events = page(client, EVENTS, limit=2)
        quarantined = page(client, QUARANTINE, limit=2)
    cursors = {EVENTS: events["next_cursor"], QUARANTINE: quarantined["next_cursor"]}
    seen = {EVENTS: events["items"], QUARANTINE: quarantined["items"]}

    with make_client(tmp_path, api_keys=KEYS) as restarted:  # or another replica
        for path, cursor in cursors.items():
            rest = page(restarted, path, cursor=cursor, limit=10)["items"]
            assert len(rest) == len(page(restarted, path, limit=10)["items"]) - 2
            assert {i["id"] for i in rest}.isdisjoint(i["id"] for i in seen[path])

    # Rotating the keys (or moving the store) changes the derived key: old cursors are refused.
    with make_client(tmp_path, api_keys=KEYS + ",other-key-1:read") as rotated:
        for path, cursor in cursors.items():
            assert "not one this API issued" in refusal(rotated, path, cursor)


def test_a_cursor_secret_keeps_cursors_across_key_rotation(tmp_path: Path) -> None:
    secret = "a-secret-of-20-chars"
    with make_client(tmp_path, api_keys=KEYS, cursor_secret=secret) as client:
        fill(client)
        cursor = page(client, EVENTS, limit=2)["next_cursor"]
    rotated = KEYS + ",other-key-1:read"
    with make_client(tmp_path, api_keys=rotated, cursor_secret=secret) as client:
        assert len(page(client, EVENTS, cursor=cursor)["items"]) == 3


def test_a_cursor_altered_forged_or_moved_to_another_list_is_a_400(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys=KEYS) as client:
        fill(client)
        for path in (EVENTS, QUARANTINE):
            cursor = page(client, path, limit=1)["next_cursor"]
            for at in range(len(cursor)):
                swapped = "B" if cursor[at] == "A" else "A"
                altered = cursor[:at] + swapped + cursor[at + 1 :]
                assert "not one this API issued" in refusal(client, path, altered, limit=1)
        # The old unsigned form, with a position no store can take.
        payload = orjson.dumps(["events", "9999-12-31T23:59:59-14:00", "x"])
        assert "not one this API issued" in refusal(client, EVENTS, payload.hex())
        events_cursor = page(client, EVENTS, limit=1)["next_cursor"]
        assert "different query" in refusal(client, QUARANTINE, events_cursor)
        assert "different query" in refusal(client, EVENTS, events_cursor, status="landed")
