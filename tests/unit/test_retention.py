"""Retention from the datasets file is enforced by the running process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.runtime import Runtime
from tests import helpers
from tests.helpers import wait_until

DATASETS = """
datasets:
  - name: pings
    key: id
    event_time: at
    retention: 1d
    fields:
      - {name: id, type: string}
      - {name: at, type: timestamp, required: true}
"""


def test_rows_past_retention_are_deleted(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text(DATASETS)
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'q.db'}",
        store_url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        datasets=tmp_path / "ds.yaml",
        retention_interval=0.1,
    )
    now = datetime.now(UTC)
    with TestClient(create_app(Runtime(settings))) as client:
        events = [
            {"id": "old", "at": (now - timedelta(days=2)).isoformat()},
            {"id": "new", "at": (now - timedelta(hours=1)).isoformat()},
        ]
        assert client.post("/v1/datasets/pings/events", json=events).status_code == 202
        wait_until(
            lambda: client.get("/v1/datasets/pings/events/new").status_code == 200, what="new"
        )
        wait_until(
            lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == 1,
            what="the old row to be deleted",
        )
        assert client.get("/v1/datasets/pings/events/old").status_code == 404
