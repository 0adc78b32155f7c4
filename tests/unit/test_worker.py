"""The worker on the real local broker and DuckDB store, with failures injected in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from slipstream import worker as worker_module
from slipstream.brokers import Broker, Outgoing, create_broker
from slipstream.bundles import pack
from slipstream.config import Settings
from slipstream.datasets import Dataset, load_catalog
from slipstream.errors import BackendUnavailable, TerminalStoreError, TransientStoreError
from slipstream.events import EventRows, Rejected
from slipstream.metrics import Metrics
from slipstream.stores import Store, WriteResult, create_store
from slipstream.worker import Worker
from tests import helpers
from tests.helpers import eventually, flight_event

CATALOG = load_catalog(None)
FLIGHTS = CATALOG.datasets["flights"]


class FailingStore:
    """The real store, except for the failures a test asks for."""

    def __init__(
        self,
        inner: Store,
        transient_writes: int = 0,
        poison: str | None = None,
        poison_error: type[Exception] = TerminalStoreError,
    ) -> None:
        self.inner = inner
        self.transient_writes = transient_writes
        self.poison = poison
        self.poison_error = poison_error
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        self.attempts += 1
        if self.attempts <= self.transient_writes:
            raise TransientStoreError("connection reset (injected)")
        if self.poison and any(row[0] == self.poison for row in rows.rows):
            raise self.poison_error(f"cannot store {self.poison} (injected)")
        return await self.inner.write(dataset, rows, rejected)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return helpers.settings(
        broker_url=f"local:///{tmp_path / 'q.db'}",
        store_url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        lease_seconds=1,
        max_deliveries=3,
        batch_size=50,
        batch_wait=0.05,
    )


@pytest.fixture
async def backends(settings: Settings) -> AsyncIterator[tuple[Broker, Store]]:
    broker, store = create_broker(settings), create_store(settings)
    await broker.open(CATALOG.names)
    await store.open(list(CATALOG))
    yield broker, store
    await broker.close()
    await store.close()


async def publish(broker: Broker, events: list[dict[str, object]]) -> None:
    await broker.publish("flights", [Outgoing(str(e["id"]), orjson.dumps(e)) for e in events])


async def publish_bundles(broker: Broker, events: list[dict[str, object]], size: int) -> None:
    """As the API publishes to the embedded broker: the events in bundles of `size`."""
    shared = {"dataset": "flights"}
    singles = [Outgoing(str(e["id"]), orjson.dumps(e), shared) for e in events]
    await broker.publish("flights", pack(singles, max_events=size))


async def run_until(worker: Worker, check: Any, timeout: float = 30) -> None:
    task = asyncio.create_task(worker.run())
    try:
        await eventually(check, timeout=timeout)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


async def test_store_errors_mean_redelivery_and_no_loss(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    broker, store = backends
    failing = FailingStore(store, transient_writes=2)
    metrics = Metrics()
    worker = Worker(broker, failing, CATALOG, settings, metrics)
    await publish(broker, [flight_event(i) for i in range(120)])

    async def all_stored() -> bool:
        return (await store.summary(FLIGHTS)).rows == 120

    await run_until(worker, all_stored)
    assert failing.attempts > 2
    assert await broker.dead_letters("flights", 10, None) == []
    assert metrics.store_errors.labels("flights", "transient")._value.get() == 2


@pytest.mark.parametrize("bundle", [None, 10], ids=["single messages", "bundles of 10"])
async def test_a_poison_event_is_isolated_and_dead_lettered(
    settings: Settings, backends: tuple[Broker, Store], bundle: int | None
) -> None:
    """Alone, or in a bundle the worker splits back into single messages: only the culprit
    is dead-lettered, under its own id, and every other event is written once."""
    broker, store = backends
    metrics = Metrics()
    worker = Worker(broker, FailingStore(store, poison="ev-0000013"), CATALOG, settings, metrics)
    events = [flight_event(i) for i in range(40)]
    await (publish(broker, events) if bundle is None else publish_bundles(broker, events, bundle))
    assert await broker.backlog("flights") == 40  # counted in events, not in messages

    async def done() -> bool:
        return (await store.summary(FLIGHTS)).rows == 39 and bool(
            await broker.dead_letters("flights", 10, None)
        )

    await run_until(worker, done)
    [letter] = await broker.dead_letters("flights", 10, None)
    assert (letter.key, orjson.loads(letter.data)["id"]) == ("ev-0000013", "ev-0000013")
    assert "cannot store ev-0000013" in letter.reason
    assert await store.get(FLIGHTS, "ev-0000013") is None
    assert metrics.events_written.labels("flights")._value.get() == 39
    assert metrics.events_duplicate.labels("flights")._value.get() == 0
    assert metrics.events_dead_lettered.labels("flights", "terminal_error")._value.get() == 1
    assert await broker.backlog("flights") == 0


async def test_a_message_failing_every_delivery_ends_in_the_dead_letters(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    broker, store = backends
    single = settings.model_copy(update={"batch_size": 1})
    failing = FailingStore(store, poison="ev-0000002", poison_error=TransientStoreError)
    worker = Worker(broker, failing, CATALOG, single, Metrics())
    await publish(broker, [flight_event(i) for i in range(5)])

    async def done() -> bool:
        return (
            bool(await broker.dead_letters("flights", 10, None))
            and (await store.summary(FLIGHTS)).rows == 4
        )

    await run_until(worker, done)
    [letter] = await broker.dead_letters("flights", 10, None)
    assert letter.key == "ev-0000002"
    assert letter.deliveries == 3
    # Replaying it once the store accepts it stores it exactly once.
    failing.poison = None
    assert await broker.replay_dead_letters("flights", None) == 1
    worker = Worker(broker, failing, CATALOG, single, Metrics())

    async def replayed() -> bool:
        return (await store.summary(FLIGHTS)).rows == 5

    await run_until(worker, replayed)


QUARANTINED = [orjson.dumps(flight_event(1)), b"{broken", orjson.dumps(flight_event(2, status="x"))]


@pytest.mark.parametrize(
    "messages",
    [
        [Outgoing(key, data) for key, data in zip("abc", QUARANTINED, strict=True)],
        # A bundle from a client that wrote its own count: the lines decide, not the count.
        [Outgoing("b1", b"\n".join(QUARANTINED), {"bundle": "999999"})],
    ],
    ids=["single messages", "a bundle from another client"],
)
async def test_invalid_events_are_quarantined_in_the_same_commit(
    settings: Settings, backends: tuple[Broker, Store], messages: list[Outgoing]
) -> None:
    broker, store = backends
    metrics = Metrics()
    worker = Worker(broker, store, CATALOG, settings, metrics)
    await broker.publish("flights", messages)

    async def done() -> bool:
        summary = await store.summary(FLIGHTS)
        return summary.rows == 1 and summary.quarantined == 2

    await run_until(worker, done)
    assert metrics.events_quarantined.labels("flights", "invalid_json")._value.get() == 1
    assert metrics.events_quarantined.labels("flights", "schema")._value.get() == 1
    quarantined = await store.quarantined_by_id(FLIGHTS, None, 10)
    expected = ["b", "c"] if len(messages) == 3 else ["b1.1", "b1.2"]  # a line: `<bundle>.<n>`
    assert sorted(q.id for q in quarantined) == expected
    assert await store.get(FLIGHTS, "ev-0000001") is not None

    async def acked() -> bool:
        return await broker.backlog("flights") == 0

    await eventually(acked, timeout=5, what="every message acked")


class FlakyAcks:
    """The real broker, except that the first `failures` acks fail as if the broker went away."""

    def __init__(self, inner: Broker, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def ack(self, dataset: str, deliveries: Sequence[Any]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("connection closed (injected)")
        await self.inner.ack(dataset, deliveries)


async def test_a_failed_ack_after_the_commit_loses_and_duplicates_nothing(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    broker, store = backends
    flaky = FlakyAcks(broker, failures=1)
    metrics = Metrics()
    worker = Worker(flaky, store, CATALOG, settings, metrics)
    await publish(broker, [flight_event(i) for i in range(30)])

    async def redelivered_and_acked() -> bool:
        return (
            metrics.events_duplicate.labels("flights")._value.get() >= 30
            and await broker.backlog("flights") == 0
        )

    # The batch whose ack failed comes back after the 1 s lease and is acked as duplicates.
    await run_until(worker, redelivered_and_acked)
    assert (await store.summary(FLIGHTS)).rows == 30


class NoDeadLetters:
    """The real broker, except that it cannot take a dead letter (as if its DLQ were gone)."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def dead_letter(self, dataset: str, deliveries: Sequence[Any], reason: str) -> None:
        self.refused += 1
        raise BackendUnavailable("dead letter stream unavailable (injected)")


async def test_a_culprit_that_cannot_be_dead_lettered_never_holds_back_its_neighbours(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    """The neighbours are written and acked at once; the culprit alone is nacked, comes back,
    and after max_deliveries the broker buries it itself (counted as max_deliveries)."""
    broker, store = backends
    metrics = Metrics()
    refusing = NoDeadLetters(broker)
    failing = FailingStore(store, poison="ev-0000013")
    worker = Worker(refusing, failing, CATALOG, settings, metrics)
    await publish(broker, [flight_event(i) for i in range(40)])

    async def neighbours_stored_culprit_buried() -> bool:
        return (await store.summary(FLIGHTS)).rows == 39 and bool(
            await broker.dead_letters("flights", 10, None)
        )

    await run_until(worker, neighbours_stored_culprit_buried)
    [letter] = await broker.dead_letters("flights", 10, None)
    assert letter.key == "ev-0000013"
    assert letter.reason.startswith("delivered 3 times without an ack")
    assert refusing.refused >= 1
    assert await broker.backlog("flights") == 0
    assert metrics.events_dead_lettered.labels("flights", "max_deliveries")._value.get() == 1
    assert metrics.events_dead_lettered.labels("flights", "terminal_error")._value.get() == 0


async def test_isolating_two_culprits_writes_every_other_message_once(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    broker, store = backends
    metrics = Metrics()

    class TwoPoisons(FailingStore):
        async def write(
            self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
        ) -> WriteResult:
            if any(row[0] in ("ev-0000003", "ev-0000031") for row in rows.rows):
                raise TerminalStoreError("cannot store it (injected)")
            return await self.inner.write(dataset, rows, rejected)

    worker = Worker(broker, TwoPoisons(store), CATALOG, settings, metrics)
    await publish(broker, [flight_event(i) for i in range(40)])

    async def done() -> bool:
        return len(await broker.dead_letters("flights", 10, None)) == 2

    await run_until(worker, done)
    assert (await store.summary(FLIGHTS)).rows == 38
    assert metrics.events_written.labels("flights")._value.get() == 38
    assert metrics.events_duplicate.labels("flights")._value.get() == 0
    assert sorted(d.key for d in await broker.dead_letters("flights", 10, None)) == [
        "ev-0000003",
        "ev-0000031",
    ]


class DownStore(FailingStore):
    """The real store, out of reach (writes and pings fail) while `down` is set."""

    down = True

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        self.attempts += 1
        if self.down:
            raise TransientStoreError("connection refused (injected)")
        return await self.inner.write(dataset, rows, rejected)

    async def ping(self) -> None:
        if self.down:
            raise BackendUnavailable("connection refused (injected)")
        await self.inner.ping()


async def test_the_worker_resumes_as_soon_as_the_store_answers_again(
    settings: Settings, backends: tuple[Broker, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a backoff of ten minutes, only the pings can bring the worker back in time. The
    batch that failed keeps its nack delay: the backoff still spaces retries of a failed write."""
    monkeypatch.setattr(worker_module, "_backoff", lambda attempt: 600.0)
    broker, store = backends
    down = DownStore(store)
    worker = Worker(broker, down, CATALOG, settings, Metrics())
    await publish(broker, [flight_event(i) for i in range(3)])
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: _true(down.attempts > 0), timeout=10, what="a failed write")
        down.down = False
        await publish(broker, [flight_event(i) for i in range(3, 6)])

        async def new_ones_stored() -> bool:
            return (await store.summary(FLIGHTS)).rows == 3

        await eventually(new_ones_stored, timeout=30, what="the worker to resume")
        assert await store.get(FLIGHTS, "ev-0000000") is None  # nacked for ten minutes
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


async def _true(value: bool) -> bool:
    return value


class HeldStore:
    """The real store, each write held until the test lets it go; counts writes under way."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writing = self.most_at_once = 0
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        self.writing += 1
        self.most_at_once = max(self.most_at_once, self.writing)
        try:
            await self.go.wait()
            return await self.inner.write(dataset, rows, rejected)
        finally:
            self.writing -= 1


async def test_the_next_batch_is_taken_while_the_store_writes_one(
    settings: Settings, backends: tuple[Broker, Store]
) -> None:
    """SLIPSTREAM_BATCHES_IN_FLIGHT (2 by default): a second batch is pulled and decoded while
    the store still writes the first, and each event is stored once."""
    broker, store = backends
    held = HeldStore(store)
    worker = Worker(broker, held, CATALOG, settings, Metrics())
    assert settings.batches_in_flight == 2
    await publish(broker, [flight_event(i) for i in range(4 * settings.batch_size)])

    async def both_writing() -> bool:
        return held.writing == 2

    async def all_stored() -> bool:
        held.go.set()
        return (await store.summary(FLIGHTS)).rows == 4 * settings.batch_size

    task = asyncio.create_task(worker.run())
    try:
        await eventually(both_writing, what="two batches written at once")
    finally:
        held.go.set()
        worker.stop()
        await asyncio.wait_for(task, 10)
    await run_until(Worker(broker, held, CATALOG, settings, Metrics()), all_stored)
    assert held.most_at_once == 2
    assert await broker.dead_letters("flights", 10, None) == []
