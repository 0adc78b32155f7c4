"""DuckDB-only behaviour: migrations at open, error sorting, reads beside the writer thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from slipstream.datasets import Dataset, DatasetError, FieldSpec, FieldType
from slipstream.errors import BackendUnavailable, TerminalStoreError, TransientStoreError
from slipstream.events import EventCodec, EventRows
from slipstream.stores import ListQuery
from slipstream.stores.duckdb import DuckDBStore
from tests import helpers

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'nested' / 'warehouse.duckdb'}"


def open_store(url: str) -> DuckDBStore:
    return DuckDBStore.from_url(url, helpers.settings())


@pytest.fixture
async def store(url: str, flights: Dataset) -> AsyncIterator[DuckDBStore]:
    instance = open_store(url)
    await instance.open([flights])
    yield instance
    await instance.close()


def rows_of(dataset: Dataset, *events: dict[str, object]) -> EventRows:
    messages = [(str(e["id"]), orjson.dumps(e), T0) for e in events]
    rows, rejected = EventCodec(dataset).decode(messages)
    assert not rejected
    return rows


def event(i: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"ev-{i}",
        "flight_id": f"LA{i}",
        "status": "landed",
        "event_time": (T0 + timedelta(minutes=i)).isoformat(),
    }
    return base | fields


def with_fields(dataset: Dataset, *fields: FieldSpec) -> Dataset:
    return dataset.model_copy(update={"fields": (*dataset.fields, *fields)})


def retyped(dataset: Dataset, name: str, new_type: FieldType) -> Dataset:
    fields = tuple(
        FieldSpec(name=f.name, type=new_type, required=f.required) if f.name == name else f
        for f in dataset.fields
    )
    return dataset.model_copy(update={"fields": fields})


async def test_url_makes_parent_directories(url: str, tmp_path: Path, flights: Dataset) -> None:
    store = open_store(url)
    await store.open([flights])
    await store.close()

    assert (tmp_path / "nested" / "warehouse.duckdb").is_file()


async def test_memory_url(flights: Dataset) -> None:
    store = open_store("duckdb:///:memory:")
    await store.open([flights])
    try:
        assert (await store.write(flights, rows_of(flights, event(1)), [])).inserted == 1
        assert await store.get(flights, "ev-1") is not None
    finally:
        await store.close()


async def test_added_optional_field_is_migrated(url: str, flights: Dataset) -> None:
    old = open_store(url)
    await old.open([flights])
    await old.write(flights, rows_of(flights, event(1, terminal="B")), [])
    await old.close()
    grown = with_fields(flights, FieldSpec(name="terminal", type="string"))

    store = open_store(url)
    await store.open([grown])
    try:
        await store.write(grown, rows_of(grown, event(2, terminal="C")), [])
        before = await store.get(grown, "ev-1")
        after = await store.get(grown, "ev-2")
    finally:
        await store.close()

    assert before is not None
    assert after is not None
    assert (before["terminal"], before["extra"]) == (None, {"terminal": "B"})
    assert (after["terminal"], after["extra"]) == ("C", None)


async def test_reopening_unchanged_and_enum_to_string_is_allowed(
    url: str, flights: Dataset
) -> None:
    for dataset in (flights, flights, retyped(flights, "status", "string")):
        store = open_store(url)
        await store.open([dataset])
        await store.close()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: retyped(d, "delay_minutes", "float"), "delay_minutes"),
        (lambda d: with_fields(d, FieldSpec(name="tail", type="string", required=True)), "tail"),
    ],
    ids=["type-changed", "required-added"],
)
async def test_incompatible_change_fails_at_open(
    url: str, flights: Dataset, change: object, field: str
) -> None:
    first = open_store(url)
    await first.open([flights])
    await first.close()
    changed: Dataset = change(flights)  # type: ignore[operator]

    store = open_store(url)
    try:
        with pytest.raises(DatasetError) as raised:
            await store.open([changed])
    finally:
        await store.close()

    assert "'flights'" in str(raised.value)
    assert repr(field) in str(raised.value)


async def test_unconvertible_value_is_terminal(store: DuckDBStore, flights: Dataset) -> None:
    good = rows_of(flights, event(1))
    bad = EventRows(
        good.columns,
        [
            tuple(
                "many" if c == "delay_minutes" else v
                for c, v in zip(good.columns, good.rows[0], strict=True)
            )
        ],
    )

    with pytest.raises(TerminalStoreError, match="flights"):
        await store.write(flights, bad, [])

    assert (await store.write(flights, good, [])).inserted == 1


async def test_malformed_json_column_is_terminal_and_rolls_back(url: str, flights: Dataset) -> None:
    dataset = with_fields(flights, FieldSpec(name="payload", type="json"))
    store = open_store(url)
    await store.open([dataset])
    try:
        rows = rows_of(dataset, event(1), event(2, payload={"a": 1}))
        broken = [
            row if row[0] == "ev-1" else (*row[:-3], "{not json", *row[-2:]) for row in rows.rows
        ]

        with pytest.raises(TerminalStoreError, match=r"flights.*Conversion"):
            await store.write(dataset, EventRows(rows.columns, broken), [])

        assert await store.get(dataset, "ev-1") is None  # the whole batch was rolled back
        assert (await store.write(dataset, rows, [])).inserted == 2
    finally:
        await store.close()


async def test_closed_store_is_unavailable(url: str, flights: Dataset) -> None:
    store = open_store(url)
    await store.open([flights])
    await store.close()

    with pytest.raises(TransientStoreError):
        await store.write(flights, rows_of(flights, event(1)), [])
    with pytest.raises(BackendUnavailable):
        await store.ping()


async def test_reads_do_not_wait_for_the_writer(store: DuckDBStore, flights: Dataset) -> None:
    await store.write(flights, rows_of(flights, event(1)), [])
    gate = threading.Event()
    # Hold the writer thread, queue a write behind it, then read.
    blocker = asyncio.get_running_loop().run_in_executor(store._writer_pool, gate.wait, 30)
    pending = asyncio.ensure_future(store.write(flights, rows_of(flights, event(2)), []))
    try:
        got = await asyncio.wait_for(store.get(flights, "ev-1"), timeout=10)
        listed = await asyncio.wait_for(store.list(flights, ListQuery()), timeout=10)
        assert not pending.done()
    finally:
        gate.set()
    await blocker

    assert got is not None
    assert [row["id"] for row in listed] == ["ev-1"]
    assert (await pending).inserted == 1


def test_url_query_parameters_are_duckdb_settings(tmp_path: Path) -> None:
    settings = helpers.settings()
    store = DuckDBStore.from_url(
        f"duckdb:///{tmp_path / 'w.duckdb'}?threads=1&memory_limit=256MB", settings
    )
    assert store.path == str(tmp_path / "w.duckdb")
    assert store._config == {"threads": 1, "memory_limit": "256MB"}
    default = DuckDBStore.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}", settings)
    assert default._config["threads"] >= 1


async def test_an_excluded_key_prefix_stays_out_of_reads_across_a_reopen(
    url: str, flights: Dataset
) -> None:
    # Reads skip the key test while no key has the prefix; the first such key written, or one
    # found by the look after a reopen, turns it on for good.
    hidden = ListQuery(limit=10, exclude_key_prefix="hidden-")
    store = open_store(url)
    await store.open([flights])
    await store.write(flights, rows_of(flights, event(1)), [])
    assert [e["id"] for e in await store.list(flights, hidden)] == ["ev-1"]
    assert store._prefixes.absent(flights.name, "hidden-") is True  # the test is skipped
    await store.write(flights, rows_of(flights, event(2, id="hidden-1")), [])
    assert store._prefixes.absent(flights.name, "hidden-") is False
    assert [e["id"] for e in await store.list(flights, hidden)] == ["ev-1"]
    await store.close()

    reopened = open_store(url)
    await reopened.open([flights])
    try:
        assert [e["id"] for e in await reopened.list(flights, hidden)] == ["ev-1"]
        assert (await reopened.summary(flights, exclude_key_prefix="hidden-")).rows == 1
        assert await reopened.get(flights, "hidden-1") is not None
        assert len(await reopened.list(flights, ListQuery(limit=10))) == 2
    finally:
        await reopened.close()
