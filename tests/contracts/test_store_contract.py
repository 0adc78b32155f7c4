"""What every store promises, run against each backend in STORE_BACKENDS.

Rows are made the real way: JSON bytes through EventCodec.decode. Each test has its own dataset
(flights under a unique name) so backends that share a server never mix rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import HIDDEN_KEY_PREFIX, EventCodec, EventRows, Rejected
from slipstream.stores import (
    ListQuery,
    QuarantineQuery,
    StatsQuery,
    Store,
)
from tests.contracts.backends import Backend

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
STATUSES = ("scheduled", "boarding", "departed", "delayed", "cancelled", "landed", "diverted")
AIRPORTS = ("GRU", "SCL", "LIM")
HIDDEN = HIDDEN_KEY_PREFIX  # reads leave these keys out when asked; stores may count them apart


def flight(i: int, **fields: Any) -> dict[str, Any]:
    """Event number i: 7 minutes after event i-1, with predictable field values."""
    event: dict[str, Any] = {
        "id": f"ev-{i:03d}",
        "flight_id": f"LA{800 + i}-2026-03-01",
        "status": STATUSES[i % len(STATUSES)],
        "event_time": (T0 + timedelta(minutes=7 * i)).isoformat(),
        "origin": AIRPORTS[i % len(AIRPORTS)],
        "destination": "MIA",
        "delay_minutes": i * 2,
        "gate": f"A{i}",
        "aircraft": "A320",
    }
    event.update(fields)
    return event


def decode(
    dataset: Dataset, events: Sequence[dict[str, Any] | bytes], received: datetime = RECEIVED
) -> tuple[EventRows, list[Rejected]]:
    messages = []
    for n, event in enumerate(events):
        data = event if isinstance(event, bytes) else orjson.dumps(event)
        key = event.get("id", f"key-{n}") if isinstance(event, dict) else f"key-{n}"
        messages.append((str(key), data, received))
    rows, rejected = EventCodec(dataset).decode(messages)
    return rows, [item for _, item in rejected]


async def put(store: Store, dataset: Dataset, events: Sequence[dict[str, Any]]) -> int:
    rows, rejected = decode(dataset, events)
    assert not rejected, rejected
    result = await store.write(dataset, rows, [])
    return result.inserted


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_reads_at_once_each_get_their_own_event(store: Store, dataset: Dataset) -> None:
    """Stores may answer concurrent reads by id in one query (DuckDB does): every caller still
    gets its own event or None."""
    await put(store, dataset, [flight(n) for n in range(1, 8)])
    wanted = [f"ev-{n:03d}" for n in (1, 2, 3, 5, 7)] + ["missing-1", "missing-2"]
    for count in (1, 3, 5, 7):
        got = await asyncio.gather(*(store.get(dataset, i) for i in wanted[:count]))
        assert [g["id"] if g else None for g in got] == [
            i if not i.startswith("missing") else None for i in wanted[:count]
        ]


async def test_write_then_get_round_trips(store: Store, dataset: Dataset) -> None:
    full = flight(1, event_time="2026-03-01T09:00:00.123-03:00", terminal="B", crew={"n": 5})
    sparse = {
        "id": "sparse",
        "flight_id": "LA1",
        "status": "landed",
        "event_time": "2026-03-01T10:00:00",
    }
    rows, rejected = decode(dataset, [full, sparse])
    assert not rejected

    result = await store.write(dataset, rows, [])

    assert result.inserted == 2
    assert result.quarantined == 0
    got = await store.get(dataset, "ev-001")
    assert got is not None
    assert got["event_time"] == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert got["event_time"].utcoffset() == timedelta(0)
    expected = {k: v for k, v in full.items() if k not in {"event_time", "terminal", "crew"}}
    assert {k: got[k] for k in expected} == expected
    assert got["extra"] == {"terminal": "B", "crew": {"n": 5}}
    assert set(got) == {*dataset.field_names, "extra"}

    bare = await store.get(dataset, "sparse")
    assert bare is not None
    assert bare["event_time"] == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)  # no offset: UTC
    for name in ("origin", "destination", "delay_minutes", "gate", "aircraft", "extra"):
        assert bare[name] is None
    assert await store.get(dataset, "unknown") is None


@pytest.fixture
async def typed_store(
    store_backend: Backend, tmp_path: Path, token: str, dataset: Dataset
) -> AsyncIterator[tuple[Store, Dataset]]:
    """A store opened with a dataset that has a field of every type."""
    typed = dataset.model_copy(
        update={
            "fields": (
                *dataset.fields,
                FieldSpec(name="ratio", type="float"),
                FieldSpec(name="on_time", type="bool"),
                FieldSpec(name="payload", type="json"),
                FieldSpec(name="landed_at", type="timestamp"),
            )
        }
    )
    instance = store_backend.open_store(store_backend.settings(tmp_path, token))
    await instance.open([typed])
    yield instance, typed
    await instance.close()
    if store_backend.cleanup is not None:
        await store_backend.cleanup(token)


async def test_every_field_type_round_trips(typed_store: tuple[Store, Dataset]) -> None:
    store, typed = typed_store
    payload = {"legs": [1, 2], "note": "ação", "nested": {"ok": True, "none": None}}
    event = flight(
        2,
        ratio=0.25,
        on_time=False,
        payload=payload,
        landed_at="2026-03-01T15:30:00.5+01:00",
        delay_minutes=-(2**62),
    )
    rows, _ = decode(typed, [event, flight(3, payload=[1, "two"], on_time=True)])

    await store.write(typed, rows, [])

    got = await store.get(typed, "ev-002")
    assert got is not None
    assert got["ratio"] == 0.25
    assert got["on_time"] is False
    assert got["payload"] == payload
    assert got["landed_at"] == datetime(2026, 3, 1, 14, 30, 0, 500000, tzinfo=UTC)
    assert got["delay_minutes"] == -(2**62)
    assert got["status"] == "departed"
    assert got["extra"] is None
    other = await store.get(typed, "ev-003")
    assert other is not None
    assert (other["payload"], other["on_time"], other["ratio"]) == ([1, "two"], True, None)


async def test_redelivered_batch_adds_nothing(store: Store, dataset: Dataset) -> None:
    events = [flight(i) for i in range(5)]
    rows, _ = decode(dataset, events)

    first = await store.write(dataset, rows, [])
    second = await store.write(dataset, rows, [])
    mixed = await put(store, dataset, [flight(4), flight(5), flight(6)])

    assert (first.inserted, second.inserted, mixed) == (5, 0, 2)
    assert sorted(ids(await store.list(dataset, ListQuery(limit=100)))) == [
        f"ev-{i:03d}" for i in range(7)
    ]


async def test_duplicates_in_one_batch_make_one_row(store: Store, dataset: Dataset) -> None:
    events = [flight(1, status="boarding"), flight(1, status="landed"), flight(2), flight(1)]

    assert await put(store, dataset, events) == 2

    listed = await store.list(dataset, ListQuery(limit=100))
    assert sorted(ids(listed)) == ["ev-001", "ev-002"]
    got = await store.get(dataset, "ev-001")
    assert got is not None
    assert got["status"] == "boarding"  # the first of the batch wins


async def test_list_is_newest_first_with_id_breaking_ties(store: Store, dataset: Dataset) -> None:
    same = T0 + timedelta(minutes=7 * 3)
    events = [flight(i) for i in range(6)] + [flight(10, event_time=same.isoformat())]
    await put(store, dataset, events)

    listed = await store.list(dataset, ListQuery(limit=100))

    assert ids(listed) == ["ev-005", "ev-004", "ev-010", "ev-003", "ev-002", "ev-001", "ev-000"]
    assert ids(await store.list(dataset, ListQuery(limit=2))) == ["ev-005", "ev-004"]
    assert all(row["event_time"].utcoffset() == timedelta(0) for row in listed)


AGES = [
    timedelta(0),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=20),
    timedelta(days=30),
    timedelta(days=400),
    timedelta(days=4000),
]


async def test_pages_are_the_same_however_far_apart_the_events_lie(
    store: Store, dataset: Dataset
) -> None:
    """A store may skip old data for a newest-first page (DuckDB prunes row groups by their
    event times): pages, with filters, ranges and cursors, must not show it."""
    events = [
        flight(n, event_time=(T0 - age).isoformat(), status=STATUSES[n % 2])
        for n, age in enumerate(AGES)
    ]
    await put(store, dataset, events)
    newest_first = [f"ev-{n:03d}" for n in range(len(AGES))]

    for limit in range(1, len(AGES) + 2):
        assert ids(await store.list(dataset, ListQuery(limit=limit))) == newest_first[:limit]
    seen: list[str] = []
    after = None
    while True:  # two at a time, by cursor
        page = await store.list(dataset, ListQuery(limit=2, after=after))
        if not page:
            break
        seen += ids(page)
        after = (page[-1]["event_time"], page[-1]["id"])
    assert seen == newest_first
    filtered = await store.list(dataset, ListQuery(limit=2, filters={"status": STATUSES[1]}))
    assert ids(filtered) == ["ev-001", "ev-003"]
    ranged = ListQuery(limit=2, since=T0 - timedelta(days=401), until=T0 - timedelta(hours=1))
    assert ids(await store.list(dataset, ranged)) == ["ev-002", "ev-003"]


async def test_list_filters(store: Store, dataset: Dataset) -> None:
    await put(store, dataset, [flight(i) for i in range(21)])

    async def matching(**filters: Any) -> list[str]:
        return ids(await store.list(dataset, ListQuery(limit=100, filters=filters)))

    assert await matching(status="delayed") == ["ev-017", "ev-010", "ev-003"]
    assert await matching(delay_minutes=20) == ["ev-010"]
    assert await matching(origin="SCL", status="delayed") == ["ev-010"]
    assert await matching(origin="LIM") == [f"ev-{i:03d}" for i in (20, 17, 14, 11, 8, 5, 2)]
    assert await matching(origin="XXX") == []


async def test_list_since_inclusive_until_exclusive(store: Store, dataset: Dataset) -> None:
    await put(store, dataset, [flight(i) for i in range(10)])
    since = T0 + timedelta(minutes=7 * 2)
    until = T0 + timedelta(minutes=7 * 5)

    window = await store.list(dataset, ListQuery(limit=100, since=since, until=until))
    later = await store.list(dataset, ListQuery(limit=100, since=until))
    elsewhere = since.astimezone(timezone(timedelta(hours=-3)))  # same instant, other offset
    shifted = await store.list(dataset, ListQuery(limit=100, since=elsewhere, until=until))

    assert ids(window) == ["ev-004", "ev-003", "ev-002"]
    assert ids(later) == [f"ev-{i:03d}" for i in range(9, 4, -1)]
    assert ids(shifted) == ids(window)


async def test_keyset_pagination_visits_every_row_once(store: Store, dataset: Dataset) -> None:
    # Pairs of events share an event time, so page boundaries fall inside ties.
    events = [flight(i, event_time=(T0 + timedelta(minutes=i // 2)).isoformat()) for i in range(25)]
    await put(store, dataset, events)
    everything = ids(await store.list(dataset, ListQuery(limit=100)))

    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list(dataset, ListQuery(limit=10, after=after))
        if not page:
            break
        pages.append(ids(page))
        after = (page[-1]["event_time"], page[-1]["id"])

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == everything
    assert len(set(everything)) == 25
    filtered = await store.list(
        dataset,
        ListQuery(limit=10, filters={"origin": "GRU"}, after=(T0 + timedelta(minutes=6), "ev-012")),
    )
    assert ids(filtered) == ["ev-009", "ev-006", "ev-003", "ev-000"]


async def test_stats_per_hour(store: Store, dataset: Dataset) -> None:
    minutes = [0, 10, 50, 70, 80, 190]  # hours 12, 12, 12, 13, 13, 15
    events = [
        flight(
            i,
            event_time=(T0 + timedelta(minutes=m)).isoformat(),
            status="delayed" if i % 2 else "landed",
            delay_minutes=None if i == 5 else i * 10,
        )
        for i, m in enumerate(minutes)
    ]
    await put(store, dataset, events)
    hour = timedelta(hours=1)

    overall = await store.stats(dataset, StatsQuery(bucket="hour"))
    grouped = await store.stats(dataset, StatsQuery(bucket="hour", group_by="status"))
    windowed = await store.stats(
        dataset, StatsQuery(bucket="day", since=T0 + hour, until=T0 + 3 * hour)
    )

    assert overall == [
        {"bucket": T0, "count": 3, "avg_delay_minutes": 10.0},
        {"bucket": T0 + hour, "count": 2, "avg_delay_minutes": 35.0},
        {"bucket": T0 + 3 * hour, "count": 1, "avg_delay_minutes": None},
    ]
    assert grouped == [
        {"bucket": T0, "group": "delayed", "count": 1, "avg_delay_minutes": 10.0},
        {"bucket": T0, "group": "landed", "count": 2, "avg_delay_minutes": 10.0},
        {"bucket": T0 + hour, "group": "delayed", "count": 1, "avg_delay_minutes": 30.0},
        {"bucket": T0 + hour, "group": "landed", "count": 1, "avg_delay_minutes": 40.0},
        {"bucket": T0 + 3 * hour, "group": "delayed", "count": 1, "avg_delay_minutes": None},
    ]
    assert windowed == [
        {"bucket": datetime(2026, 3, 1, tzinfo=UTC), "count": 2, "avg_delay_minutes": 35.0}
    ]
    assert all(row["bucket"].utcoffset() == timedelta(0) for row in overall)


async def test_stats_take_the_filters_of_the_list(store: Store, dataset: Dataset) -> None:
    events = [
        flight(
            i,
            status="delayed" if i % 2 else "landed",
            origin=AIRPORTS[i % 3],
            gate=None if i == 4 else f"A{i}",
            delay_minutes=i * 10,
        )
        for i in range(12)
    ]
    await put(store, dataset, events)
    hour = timedelta(hours=1)

    for filters in (
        {"status": "delayed"},
        {"status": "landed", "origin": "GRU"},
        {"delay_minutes": 30},
        {"gate": None},
        {"event_time": T0 + timedelta(minutes=14)},
        {"origin": "nowhere"},
    ):
        listed = await store.list(dataset, ListQuery(limit=100, filters=filters))
        stats = await store.stats(dataset, StatsQuery(bucket="day", filters=filters))
        assert sum(row["count"] for row in stats) == len(listed), filters
        assert bool(listed) is (filters != {"origin": "nowhere"}), filters
    delayed = await store.stats(
        dataset,
        StatsQuery(
            bucket="hour", group_by="origin", filters={"status": "delayed"}, until=T0 + hour
        ),
    )
    # Within the first hour (events 0-8, 7 minutes apart) the delayed ones are 1, 3, 5 and 7.
    assert delayed == [
        {"bucket": T0, "group": "GRU", "count": 1, "avg_delay_minutes": 30.0},
        {"bucket": T0, "group": "LIM", "count": 1, "avg_delay_minutes": 50.0},
        {"bucket": T0, "group": "SCL", "count": 2, "avg_delay_minutes": 40.0},
    ]


async def test_quarantine_write_list_and_release(store: Store, dataset: Dataset) -> None:
    bad: list[dict[str, Any] | bytes] = [
        {"id": "q-1", "status": "landed", "event_time": "2026-03-01T10:00:00Z"},  # no flight_id
        b"\xff{not json",
        {"id": "q-2", "flight_id": "LA1", "status": "lost", "event_time": "2026-03-01T10:00:00Z"},
    ]
    rows, rejected = decode(dataset, [*bad, flight(1)])
    later, more = decode(dataset, [{"id": "q-0", "flight_id": 7}], received=RECEIVED + timedelta(1))
    assert len(rejected) == 3
    assert len(more) == 1

    result = await store.write(dataset, rows, rejected)
    await store.write(dataset, later, more)
    await store.write(dataset, rows, rejected)  # a redelivery quarantines nothing twice

    assert (result.inserted, result.quarantined) == (1, 3)
    everything = await store.quarantined(dataset, QuarantineQuery(limit=100))
    assert [q.id for q in everything] == ["key-1", "q-1", "q-2", "q-0"]  # by received_at, id
    first = everything[1]
    assert "flight_id" in first.reason
    assert orjson.loads(first.raw) == bad[0]
    assert first.received_at == RECEIVED
    assert "\ufffd" in everything[0].raw  # undecodable bytes are kept, replaced

    page_one = await store.quarantined(dataset, QuarantineQuery(limit=2))
    last = page_one[-1]
    page_two = await store.quarantined(
        dataset, QuarantineQuery(limit=2, after=(last.received_at, last.id))
    )
    assert [q.id for q in page_one + page_two] == [q.id for q in everything]

    chosen = await store.quarantined_by_id(dataset, ["q-0", "q-2", "nope"], limit=10)
    assert [q.id for q in chosen] == ["q-2", "q-0"]
    assert [q.id for q in await store.quarantined_by_id(dataset, None, limit=2)] == ["key-1", "q-1"]
    assert await store.quarantined_by_id(dataset, [], limit=10) == []

    assert await store.release_quarantined(dataset, ["q-1", "q-2", "nope"]) == 2
    assert await store.release_quarantined(dataset, []) == 0
    remaining = await store.quarantined(dataset, QuarantineQuery(limit=100))
    assert [q.id for q in remaining] == ["key-1", "q-0"]


async def test_summary(store: Store, dataset: Dataset) -> None:
    empty = await store.summary(dataset)
    assert (empty.rows, empty.quarantined, empty.newest_event_time, empty.last_stored_at) == (
        0,
        0,
        None,
        None,
    )
    before = datetime.now(UTC) - timedelta(seconds=5)
    rows, rejected = decode(dataset, [flight(3), flight(1), b"[", b"{}"])

    await store.write(dataset, rows, rejected)

    summary = await store.summary(dataset)
    assert (summary.rows, summary.quarantined) == (2, 2)
    assert summary.newest_event_time == T0 + timedelta(minutes=21)
    assert summary.last_stored_at is not None
    assert before <= summary.last_stored_at <= datetime.now(UTC) + timedelta(seconds=5)


async def test_expire_deletes_only_older_rows(store: Store, dataset: Dataset) -> None:
    await put(store, dataset, [flight(i) for i in range(6)])
    cutoff = T0 + timedelta(minutes=7 * 2)

    assert await store.expire(dataset, cutoff) == 2
    assert await store.expire(dataset, cutoff) == 0

    assert ids(await store.list(dataset, ListQuery(limit=100))) == [
        "ev-005",
        "ev-004",
        "ev-003",
        "ev-002",
    ]
    assert await store.get(dataset, "ev-001") is None


async def test_keys_with_an_excluded_prefix_are_left_out_of_reads_not_of_get(
    store: Store, dataset: Dataset
) -> None:
    hidden_id = f"{HIDDEN}0193a5d4-7c1e-7000-8000-000000000001"
    # Newest of all and alone in its own hour, so any leak shows in the list head and the stats.
    hidden = flight(30, id=hidden_id, status="delayed")
    # Only a prefix counts: an id merely containing it is an ordinary event.
    lookalike = flight(2, id=f"not-{HIDDEN}2")
    await put(store, dataset, [flight(0), flight(1), lookalike, hidden])

    got = await store.get(dataset, hidden_id)
    listed = await store.list(dataset, ListQuery(limit=100, exclude_key_prefix=HIDDEN))
    delayed = await store.list(
        dataset, ListQuery(limit=100, filters={"status": "delayed"}, exclude_key_prefix=HIDDEN)
    )
    after = (T0 + timedelta(days=1), "ev-999")
    paged = await store.list(dataset, ListQuery(limit=1, after=after, exclude_key_prefix=HIDDEN))
    stats = await store.stats(
        dataset, StatsQuery(bucket="day", group_by="status", exclude_key_prefix=HIDDEN)
    )
    summary = await store.summary(dataset, exclude_key_prefix=HIDDEN)

    assert got is not None
    assert (got["id"], got["status"]) == (hidden_id, "delayed")
    assert ids(listed) == [f"not-{HIDDEN}2", "ev-001", "ev-000"]
    assert delayed == []
    assert ids(paged) == [f"not-{HIDDEN}2"]
    assert sum(row["count"] for row in stats) == 3
    assert "delayed" not in {row["group"] for row in stats}
    assert summary.rows == 3
    assert summary.newest_event_time == T0 + timedelta(minutes=7 * 2)
    # Without the option, every row counts.
    assert ids(await store.list(dataset, ListQuery(limit=1))) == [hidden_id]
    assert (await store.summary(dataset)).rows == 4


async def test_a_prefix_written_after_reads_that_left_it_out_is_still_left_out(
    store: Store, dataset: Dataset
) -> None:
    # A store may skip the test while no key has the prefix; the first such key must end that.
    listed = ListQuery(limit=10, exclude_key_prefix=HIDDEN)
    counted = StatsQuery(bucket="day", exclude_key_prefix=HIDDEN)
    await put(store, dataset, [flight(0)])
    assert ids(await store.list(dataset, listed)) == ["ev-000"]
    assert (await store.summary(dataset, exclude_key_prefix=HIDDEN)).rows == 1

    await put(store, dataset, [flight(1, id=f"{HIDDEN}1")])

    assert ids(await store.list(dataset, listed)) == ["ev-000"]
    assert [row["count"] for row in await store.stats(dataset, counted)] == [1]
    assert (await store.summary(dataset, exclude_key_prefix=HIDDEN)).rows == 1
    assert (await store.summary(dataset, exclude_key_prefix="other-")).rows == 2


async def test_only_excluded_keys_read_as_an_empty_dataset(store: Store, dataset: Dataset) -> None:
    hidden_id = f"{HIDDEN}only"
    await put(store, dataset, [flight(1, id=hidden_id)])

    summary = await store.summary(dataset, exclude_key_prefix=HIDDEN)

    assert await store.get(dataset, hidden_id) is not None
    assert await store.list(dataset, ListQuery(limit=10, exclude_key_prefix=HIDDEN)) == []
    assert await store.stats(dataset, StatsQuery(bucket="hour", exclude_key_prefix=HIDDEN)) == []
    assert (summary.rows, summary.newest_event_time, summary.last_stored_at) == (0, None, None)


async def test_json_and_undeclared_fields_are_refused_for_filters_and_groups(
    typed_store: tuple[Store, Dataset],
) -> None:
    store, typed = typed_store
    for bad, why in (("payload", "is json"), ("nope", "no field 'nope'")):
        with pytest.raises(ValueError, match=why):
            await store.list(typed, ListQuery(filters={bad: "x"}))
        with pytest.raises(ValueError, match=why):
            await store.stats(typed, StatsQuery(filters={bad: "x"}))
        with pytest.raises(ValueError, match=why):
            await store.stats(typed, StatsQuery(group_by=bad))
    with pytest.raises(ValueError, match="bucket"):
        await store.stats(typed, StatsQuery(bucket="week"))  # type: ignore[arg-type]


async def test_stats_group_on_fields_named_like_their_output(
    store_backend: Backend, tmp_path: Path, dataset: Dataset
) -> None:
    named = dataset.model_copy(
        update={
            "fields": (
                *dataset.fields,
                FieldSpec(name="bucket", type="string"),
                FieldSpec(name="grp", type="string"),
                FieldSpec(name="n", type="int"),
            )
        }
    )
    store = store_backend.open_store(store_backend.settings(tmp_path, dataset.name))
    await store.open([named])
    try:
        events = [flight(i, bucket=f"b{i % 2}", grp=f"g{i % 3}", n=i) for i in range(12)]
        await put(store, named, events)

        by_hour = await store.stats(named, StatsQuery(bucket="hour", group_by="grp"))
        by_bucket = await store.stats(named, StatsQuery(bucket="day", group_by="bucket"))
    finally:
        await store.close()

    # Events 0-8 fall in the first hour (7 minutes apart), 9-11 in the second.
    assert [(r["bucket"], r["group"], r["count"]) for r in by_hour] == [
        (T0, "g0", 3),
        (T0, "g1", 3),
        (T0, "g2", 3),
        (T0 + timedelta(hours=1), "g0", 1),
        (T0 + timedelta(hours=1), "g1", 1),
        (T0 + timedelta(hours=1), "g2", 1),
    ]
    day = datetime(2026, 3, 1, tzinfo=UTC)
    assert [(r["bucket"], r["group"], r["avg_n"]) for r in by_bucket] == [
        (day, "b0", 5.0),
        (day, "b1", 6.0),
    ]
