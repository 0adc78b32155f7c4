"""What only the embedded SQLite broker promises: a file shared by processes, durable, in WAL mode."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from slipstream.brokers import BrokerSettings, Outgoing
from slipstream.brokers.local import LocalBroker
from slipstream.config import Settings
from slipstream.errors import BackendUnavailable
from tests import helpers

TOPIC = "flights"

Opener = Callable[..., AbstractAsyncContextManager[LocalBroker]]


def settings(**values: object) -> Settings:
    return helpers.settings(**{"lease_seconds": 30, **values})


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def opened(queue_file: Path) -> Opener:
    """`async with opened() as broker`: one more broker (one more "process") on the same file."""

    @asynccontextmanager
    async def opener(busy_timeout: float = 5.0) -> AsyncIterator[LocalBroker]:
        broker = LocalBroker(queue_file, BrokerSettings.of(settings()), busy_timeout=busy_timeout)
        await broker.open([TOPIC])
        try:
            yield broker
        finally:
            await broker.close()

    return opener


async def test_a_publish_by_one_instance_reaches_a_waiting_pull_of_another(opened: Opener) -> None:
    async with opened() as consumer, opened() as producer:
        assert await consumer.pull(TOPIC, 10, wait=0) == []
        await producer.publish(TOPIC, [Outgoing("e1", b"one")])
        start = time.monotonic()
        got = await consumer.pull(TOPIC, 10, wait=5)  # found by polling: no wake-up across files
        assert [(d.key, d.data) for d in got] == [("e1", b"one")]
        assert time.monotonic() - start < 1


async def test_a_publish_from_another_os_process_is_pulled(
    opened: Opener, queue_file: Path
) -> None:
    script = (
        "import asyncio, sys\n"
        "from slipstream.brokers import Outgoing\n"
        "from slipstream.brokers.local import LocalBroker\n"
        "from slipstream.config import Settings\n"
        "async def main():\n"
        "    broker = LocalBroker.from_url(sys.argv[1], Settings(_env_file=None))\n"
        "    await broker.open(['flights'])\n"
        "    await broker.publish('flights', [Outgoing('e1', b'from afar', {'by': 'child'})])\n"
        "    await broker.close()\n"
        "asyncio.run(main())\n"
    )
    async with opened() as consumer:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, f"local:///{queue_file}"
        )
        got = await consumer.pull(TOPIC, 10, wait=20)  # waiting while the child publishes
        assert await child.wait() == 0
    assert [(d.key, d.data, d.attributes) for d in got] == [("e1", b"from afar", {"by": "child"})]


async def test_two_instances_pulling_together_get_each_message_once(opened: Opener) -> None:
    async with opened() as first, opened() as second:
        await first.publish(TOPIC, [Outgoing(f"k{i}", b"x") for i in range(200)])
        keys: list[str] = []
        for _ in range(20):
            for broker in (first, second):
                batch = await broker.pull(TOPIC, 7, wait=0)
                keys += [d.key for d in batch]
                await broker.ack(TOPIC, batch)
        assert sorted(keys) == sorted(f"k{i}" for i in range(200))


async def test_a_published_message_survives_a_restart(opened: Opener) -> None:
    async with opened() as broker:
        await broker.publish(TOPIC, [Outgoing("e1", b"kept", {"a": "b"})])
    async with opened() as broker:
        assert await broker.backlog(TOPIC) == 1
        [delivery] = await broker.pull(TOPIC, 10, wait=0)
    assert (delivery.key, delivery.data, delivery.attributes) == ("e1", b"kept", {"a": "b"})


async def test_the_file_is_in_wal_mode(opened: Opener, queue_file: Path) -> None:
    async with opened():
        with sqlite3.connect(queue_file) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


async def test_from_url_resolves_a_relative_path_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = LocalBroker.from_url("local:///./data/queue.db", BrokerSettings.of(settings()))
    assert broker.path == tmp_path / "data" / "queue.db"  # pytest's tmp_path is resolved
    assert broker.path.parent.is_dir()
    await broker.open([TOPIC])
    await broker.ping()
    await broker.close()
    assert broker.path.is_file()


async def test_a_lock_held_past_the_busy_timeout_is_backend_unavailable(
    opened: Opener, queue_file: Path
) -> None:
    async with opened(busy_timeout=0.1) as broker:
        blocker = sqlite3.connect(queue_file, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailable, match="locked"):
                await broker.publish(TOPIC, [Outgoing("e1", b"x")])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await broker.publish(TOPIC, [Outgoing("e1", b"x")])
        assert await broker.backlog(TOPIC) == 1


async def test_an_unknown_dataset_is_a_value_error(opened: Opener) -> None:
    async with opened() as broker:
        with pytest.raises(ValueError, match="unknown dataset 'nope'"):
            await broker.publish("nope", [Outgoing("e1", b"x")])
        with pytest.raises(ValueError, match="unknown dataset"):
            await broker.pull("nope", 1, wait=0)


async def test_a_closed_broker_is_unavailable(opened: Opener) -> None:
    async with opened() as broker:
        pass
    with pytest.raises(BackendUnavailable, match="closed"):
        await broker.ping()


def bundle(key: str, count: int) -> Outgoing:
    return Outgoing(key, b"\n".join([b"{}"] * count), {"bundle": str(count)})


async def test_the_backlog_counts_the_events_a_bundle_carries(opened: Opener) -> None:
    async with opened() as broker, opened() as other:
        await broker.publish(TOPIC, [bundle("b1", 300), bundle("b2", 200), Outgoing("e", b"{}")])
        assert await broker.backlog(TOPIC) == 501
        assert await other.backlog(TOPIC) == 501  # counted in the file, not only in memory
        first, *_ = await broker.pull(TOPIC, 1, wait=0)
        await broker.ack(TOPIC, [first])
        assert await broker.backlog(TOPIC) == 201
    async with opened() as fresh:
        assert await fresh.backlog(TOPIC) == 201


async def test_a_worn_out_bundle_is_buried_and_replayed_whole(queue_file: Path) -> None:
    broker = LocalBroker(queue_file, BrokerSettings.of(settings(max_deliveries=1)))
    await broker.open([TOPIC])
    try:
        await broker.publish(TOPIC, [bundle("b1", 7)])
        [leased] = await broker.pull(TOPIC, 10, wait=0)
        await broker.nack(TOPIC, [leased], 0)
        assert await broker.pull(TOPIC, 10, wait=0) == []
        assert broker.buried(TOPIC) == 7
        [letter] = await broker.dead_letters(TOPIC, 10, None)
        assert (letter.key, letter.data.count(b"\n")) == ("b1", 6)
        assert await broker.replay_dead_letters(TOPIC, None) == 1
        assert await broker.backlog(TOPIC) == 7
        [again] = await broker.pull(TOPIC, 10, wait=0)
        assert (again.key, again.attributes) == ("b1", {"bundle": "7"})
    finally:
        await broker.close()


async def test_a_queue_file_from_before_bundles_opens_with_its_messages(
    opened: Opener, queue_file: Path
) -> None:
    """Files made before the `events` column get it, 1 for each message they hold."""
    old_schema = """
    CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,
        key TEXT NOT NULL, data BLOB NOT NULL, attributes TEXT NOT NULL,
        published_at REAL NOT NULL, visible_at REAL NOT NULL, deliveries INTEGER NOT NULL);
    CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,
        key TEXT NOT NULL, data BLOB NOT NULL, attributes TEXT NOT NULL,
        published_at REAL NOT NULL, deliveries INTEGER NOT NULL, reason TEXT NOT NULL,
        dead_at REAL NOT NULL);
    INSERT INTO messages (dataset, key, data, attributes, published_at, visible_at, deliveries)
        VALUES ('flights', 'old', x'7b7d', '{}', 1.0, 1.0, 0);
    """
    with sqlite3.connect(queue_file) as db:
        db.executescript(old_schema)
    db.close()
    async with opened() as broker:
        assert await broker.backlog(TOPIC) == 1
        await broker.publish(TOPIC, [bundle("new", 3)])
        assert await broker.backlog(TOPIC) == 4
        got = await broker.pull(TOPIC, 10, wait=0)
    assert [d.key for d in got] == ["old", "new"]


async def test_a_drained_queue_gives_its_pages_back(opened: Opener, queue_file: Path) -> None:
    """A flood leaves the file as large as its highest backlog; once drained it shrinks."""

    def pages() -> tuple[int, int]:
        with sqlite3.connect(queue_file) as db:
            counts = (
                db.execute("PRAGMA page_count").fetchone()[0],
                db.execute("PRAGMA freelist_count").fetchone()[0],
            )
        db.close()
        return counts

    async with opened() as broker:
        await broker.publish(TOPIC, [Outgoing(f"e{i}", b"x" * 100_000) for i in range(100)])
        flooded, _ = pages()
        assert flooded > 2400  # 10 MB in 4 KiB pages
        leased = await broker.pull(TOPIC, 60, wait=0)
        await broker.ack(TOPIC, leased)
        assert pages()[0] == flooded  # not drained yet: nothing given back
        rest = await broker.pull(TOPIC, 100, wait=0)
        await broker.ack(TOPIC, rest)
        drained, free = pages()
    assert drained < 100
    assert free == 0
