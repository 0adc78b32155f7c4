"""What every store promises across opens and failures, run against each backend in
STORE_BACKENDS: schema changes at open (a new optional field is added, an incompatible change is
refused by name), a value the database refuses is a terminal error that stores nothing of its
batch, and a closed store is unavailable, never a crash.

Each test reopens the same location (the same token) with another store, as a restart does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from slipstream.datasets import Dataset, DatasetError, FieldSpec, FieldType
from slipstream.errors import BackendUnavailable, TerminalStoreError, TransientStoreError
from slipstream.events import EventRows
from slipstream.stores import ListQuery, Store
from tests.contracts.backends import Backend
from tests.contracts.test_store_contract import HIDDEN, decode, flight, ids, put

Opened = Callable[[Dataset], AbstractAsyncContextManager[Store]]


@pytest.fixture
def opened(store_backend: Backend, tmp_path: Path, token: str) -> Opened:
    """`async with opened(dataset) as store`: a store on the test's location, closed after."""

    @asynccontextmanager
    async def open_one(dataset: Dataset) -> AsyncIterator[Store]:
        store = store_backend.open_store(store_backend.settings(tmp_path, token))
        try:
            await store.open([dataset])
            yield store
        finally:
            await store.close()

    return open_one


@pytest.fixture
async def cleanup(store_backend: Backend, token: str) -> AsyncIterator[None]:
    yield
    if store_backend.cleanup is not None:
        await store_backend.cleanup(token)


pytestmark = pytest.mark.usefixtures("cleanup")


def with_fields(dataset: Dataset, *fields: FieldSpec) -> Dataset:
    return dataset.model_copy(update={"fields": (*dataset.fields, *fields)})


def retyped(dataset: Dataset, name: str, new_type: FieldType) -> Dataset:
    fields = tuple(
        FieldSpec(name=f.name, type=new_type, required=f.required) if f.name == name else f
        for f in dataset.fields
    )
    return dataset.model_copy(update={"fields": fields})


def replaced(rows: EventRows, column: str, value: Any) -> EventRows:
    index = rows.columns.index(column)
    return EventRows(rows.columns, [(*r[:index], value, *r[index + 1 :]) for r in rows.rows])


async def test_an_added_optional_field_becomes_a_column(opened: Opened, dataset: Dataset) -> None:
    async with opened(dataset) as old:
        await put(old, dataset, [flight(1, terminal="B")])
    grown = with_fields(
        dataset, FieldSpec(name="terminal", type="string"), FieldSpec(name="crew", type="json")
    )

    async with opened(grown) as store:
        await put(store, grown, [flight(2, terminal="C", crew={"n": 2})])
        before = await store.get(grown, "ev-001")
        after = await store.get(grown, "ev-002")

    assert before is not None
    assert after is not None
    assert (before["terminal"], before["crew"], before["extra"]) == (None, None, {"terminal": "B"})
    assert (after["terminal"], after["crew"], after["extra"]) == ("C", {"n": 2}, None)


async def test_reopening_unchanged_or_with_an_enum_become_string_is_allowed(
    opened: Opened, dataset: Dataset
) -> None:
    for version in (dataset, dataset, retyped(dataset, "status", "string")):
        async with opened(version) as store:
            await put(store, version, [flight(len(await store.list(version, ListQuery())))])
    async with opened(dataset) as store:
        assert len(await store.list(dataset, ListQuery())) == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: retyped(d, "delay_minutes", "float"), "delay_minutes"),
        (lambda d: with_fields(d, FieldSpec(name="tail", type="string", required=True)), "tail"),
    ],
    ids=["type-changed", "required-added"],
)
async def test_an_incompatible_change_fails_at_open_naming_the_field(
    opened: Opened, dataset: Dataset, change: Callable[[Dataset], Dataset], field: str
) -> None:
    async with opened(dataset):
        pass

    with pytest.raises(DatasetError) as raised:
        async with opened(change(dataset)):
            pass

    assert repr(dataset.name) in str(raised.value)
    assert repr(field) in str(raised.value)


async def test_a_value_the_column_cannot_hold_is_terminal(opened: Opened, dataset: Dataset) -> None:
    good, _ = decode(dataset, [flight(1)])

    async with opened(dataset) as store:
        with pytest.raises(TerminalStoreError, match=dataset.name):
            await store.write(dataset, replaced(good, "delay_minutes", "many"), [])

        assert await store.get(dataset, "ev-001") is None
        assert (await store.write(dataset, good, [])).inserted == 1


async def test_malformed_json_is_terminal_and_stores_nothing_of_the_batch(
    opened: Opened, dataset: Dataset
) -> None:
    typed = with_fields(dataset, FieldSpec(name="payload", type="json"))
    rows, _ = decode(typed, [flight(1), flight(2, payload={"a": 1})])
    broken = replaced(rows, "payload", "{not json")
    _, rejected = decode(typed, [b"[", b"{}"])

    async with opened(typed) as store:
        with pytest.raises(TerminalStoreError, match=typed.name):
            await store.write(typed, broken, rejected)

        assert await store.get(typed, "ev-001") is None  # the whole batch was refused
        assert await store.quarantined_by_id(typed, None, 10) == []
        assert (await store.write(typed, rows, [])).inserted == 2


async def test_a_closed_store_is_unavailable(opened: Opened, dataset: Dataset) -> None:
    async with opened(dataset) as store:
        pass
    rows, _ = decode(dataset, [flight(1)])

    with pytest.raises(TransientStoreError):
        await store.write(dataset, rows, [])
    with pytest.raises(BackendUnavailable):
        await store.ping()
    with pytest.raises(BackendUnavailable):
        await store.get(dataset, "ev-001")


async def test_an_excluded_prefix_stays_out_of_reads_across_a_reopen(
    opened: Opened, dataset: Dataset
) -> None:
    # A store may remember that no key has the prefix; a reopen must find the ones written.
    hidden = ListQuery(limit=10, exclude_key_prefix=HIDDEN)
    async with opened(dataset) as store:
        await put(store, dataset, [flight(1)])
        assert ids(await store.list(dataset, hidden)) == ["ev-001"]
        await put(store, dataset, [flight(2, id=f"{HIDDEN}2")])

    async with opened(dataset) as reopened:
        assert ids(await reopened.list(dataset, hidden)) == ["ev-001"]
        assert (await reopened.summary(dataset, exclude_key_prefix=HIDDEN)).rows == 1
        assert await reopened.get(dataset, f"{HIDDEN}2") is not None
        assert len(await reopened.list(dataset, ListQuery(limit=10))) == 2
