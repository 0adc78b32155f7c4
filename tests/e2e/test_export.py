"""GET /v1/datasets/{ds}/export on the embedded server over real HTTP: the whole range in one
Parquet file of several row groups, NDJSON on request, filters as the list takes them."""

from __future__ import annotations

import io

import orjson
import pyarrow.parquet as pq
import pytest

from slipstream import exports
from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until

pytestmark = pytest.mark.e2e
EXPORT = "/v1/datasets/flights/export"
EVENTS = exports.PAGE_ROWS + 1_500  # more than one page: two row groups


def test_export_streams_every_event_once_as_parquet_or_ndjson(server: ServerProcess) -> None:
    events = [flight_event(i, prefix="ex") for i in range(EVENTS)]
    with server.client() as client:
        for start in range(0, EVENTS, 1000):
            body = b"\n".join(orjson.dumps(e) for e in events[start : start + 1000])
            answer = client.post(
                "/v1/datasets/flights/events",
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 202, answer.text
        wait_until(
            lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == EVENTS,
            timeout=60,
            what=f"{EVENTS} rows",
        )
        newest_first = stored_ids(client)

        answer = client.get(EXPORT)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == exports.PARQUET_TYPE
        assert answer.headers["content-disposition"] == 'attachment; filename="flights.parquet"'
        parquet = pq.ParquetFile(io.BytesIO(answer.content))
        assert parquet.metadata.num_row_groups == 2
        assert parquet.read().column("id").to_pylist() == newest_first

        landed = client.get(
            EXPORT, params={"status": "landed"}, headers={"Accept": "application/x-ndjson"}
        )
        assert landed.status_code == 200
        assert landed.headers["content-type"].startswith(exports.NDJSON_TYPE)
        lines = [orjson.loads(line) for line in landed.content.splitlines()]
        wanted = [str(e["id"]) for e in events if e["status"] == "landed"]
        assert sorted(e["id"] for e in lines) == sorted(wanted)
        assert {e["status"] for e in lines} == {"landed"}

        refused = client.get(EXPORT, params={"limit": "10"})
        assert refused.status_code == 400
        assert "limit" in refused.json()["error"]["message"]
        late = client.get(EXPORT, params={"since": "yesterday"})
        assert late.status_code == 400
        assert "since" in late.json()["error"]["message"]
