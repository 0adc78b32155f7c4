"""Exports page through every store the way lists do: each event once, newest first, as the
list gives it, in Parquet and NDJSON alike (slipstream/exports.py)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta

import orjson
import pyarrow.parquet as pq

from slipstream import exports
from slipstream.api.encoding import dumps
from slipstream.datasets import Dataset
from slipstream.stores import ListQuery, Store
from tests.contracts.test_store_contract import T0, flight, ids, put


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def export(store: Store, dataset: Dataset, query: ListQuery, kind: str) -> bytes:
    if kind == "parquet":
        tables = await exports.first_then_rest(exports.tables(store, dataset, query))
        return await collect(exports.parquet(exports.arrow_schema(dataset), tables))
    events = await exports.first_then_rest(exports.pages(store, dataset, query))
    return await collect(exports.ndjson(events, dumps))


async def test_an_export_holds_what_the_list_pages_hold(store: Store, dataset: Dataset) -> None:
    # Pairs of events share an event time, so page boundaries fall inside ties; one event
    # carries a field the schema does not declare (kept in `extra`).
    events = [flight(i, event_time=(T0 + timedelta(minutes=i // 2)).isoformat()) for i in range(25)]
    events[7]["cabin"] = {"seats": 180}
    await put(store, dataset, events)
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=11)
    whole = ListQuery(limit=100, since=since, until=until)
    listed = await store.list(dataset, whole)
    assert len(listed) == 20
    paged = ListQuery(limit=7, since=since, until=until)  # pages of 7: 7, 7, 6

    table = pq.read_table(io.BytesIO(await export(store, dataset, paged, "parquet")))
    assert table.schema == exports.arrow_schema(dataset)
    assert table.column("id").to_pylist() == ids(listed)
    assert (
        pq.ParquetFile(io.BytesIO(await export(store, dataset, paged, "parquet"))).num_row_groups
        == 3
    )
    rows = table.to_pylist()
    assert [r["event_time"] for r in rows] == [e["event_time"] for e in listed]
    assert [r["delay_minutes"] for r in rows] == [e["delay_minutes"] for e in listed]
    extra = {r["id"]: r["extra"] for r in rows if r["extra"] is not None}
    assert {k: orjson.loads(v) for k, v in extra.items()} == {"ev-007": {"cabin": {"seats": 180}}}

    lines = (await export(store, dataset, paged, "ndjson")).splitlines()
    assert lines == [dumps(event) for event in listed]


async def test_filters_and_an_empty_range_export_as_the_list_answers(
    store: Store, dataset: Dataset
) -> None:
    await put(store, dataset, [flight(i) for i in range(12)])
    query = ListQuery(limit=5, filters={"origin": "GRU"})
    wanted = ids(await store.list(dataset, ListQuery(limit=100, filters={"origin": "GRU"})))
    table = pq.read_table(io.BytesIO(await export(store, dataset, query, "parquet")))
    assert table.column("id").to_pylist() == wanted == ["ev-009", "ev-006", "ev-003", "ev-000"]

    nothing = ListQuery(limit=5, until=T0)  # before the first event
    empty = pq.read_table(io.BytesIO(await export(store, dataset, nothing, "parquet")))
    assert empty.num_rows == 0
    assert empty.schema == exports.arrow_schema(dataset)
    assert await export(store, dataset, nothing, "ndjson") == b""
