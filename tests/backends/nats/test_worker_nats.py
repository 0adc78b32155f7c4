"""The worker on NATS and PostgreSQL: every accepted event ends stored, quarantined or
dead-lettered, whatever shape, size or content its message has and whoever published it; and a
NATS outage ends without the worker sleeping out its backoff.

The PostgreSQL and NATS of the machine (skipped, or failed in CI, when absent), with a schema and
a stream prefix per test; the outage test runs a nats-server of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from fastapi.testclient import TestClient

from slipstream import worker as worker_module
from slipstream.api.app import create_app
from slipstream.brokers import Outgoing, create_broker
from slipstream.brokers.nats_resources import Topic
from slipstream.config import Settings
from slipstream.datasets import Dataset, load_catalog
from slipstream.errors import BackendUnavailable, TerminalStoreError
from slipstream.events import EventRows, Rejected
from slipstream.metrics import Metrics
from slipstream.runtime import Runtime
from slipstream.stores import Store, WriteResult, create_store
from slipstream.worker import Worker
from tests import helpers
from tests.contracts.backends import POSTGRES_URL, drop_nats_streams, drop_postgres_schema
from tests.helpers import eventually, flight_event, wait_until
from tests.services import NatsServer, nats_server, port_open, service_missing

NATS = "nats://127.0.0.1:4222"
CATALOG = load_catalog(None)
FLIGHTS = CATALOG.datasets["flights"]


@pytest.fixture
def names() -> Iterator[str]:
    """A NATS prefix and a PostgreSQL schema of the test's own."""
    if not port_open("127.0.0.1", 4222):
        service_missing("nats", "nothing listens on 127.0.0.1:4222")
    if not port_open("127.0.0.1", 5432):
        service_missing("postgres", "nothing listens on 127.0.0.1:5432")
    name = f"w{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(drop_nats_streams(name))
    asyncio.run(drop_postgres_schema(f"t_{name}"))


def settings_for(name: str, **values: Any) -> Settings:
    return helpers.settings(
        broker_url=f"{NATS}?prefix={name}",
        store_url=f"{POSTGRES_URL}?schema=t_{name}&pool_min=1",
        **{
            "lease_seconds": 2,
            "max_deliveries": 3,
            "batch_size": 500,
            "batch_wait": 0.05,
            **values,
        },
    )


class Refusing:
    """The real store, refusing for good every batch holding an event id that starts with
    `prefix` (as a store refuses a value it cannot hold)."""

    def __init__(self, inner: Store, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        if any(str(row[0]).startswith(self.prefix) for row in rows.rows):
            raise TerminalStoreError(f"cannot store an event named {self.prefix}… (injected)")
        return await self.inner.write(dataset, rows, rejected)


async def publish_raw(name: str, bodies: Sequence[bytes]) -> int:
    """nats-py's JetStream publish with no headers at all; returns the server's max_payload."""
    connection = await nats.connect(NATS)
    try:
        jetstream = connection.jetstream()
        for body in bodies:
            await jetstream.publish(Topic.of(name, "flights").subject, body)
        return connection.max_payload
    finally:
        await connection.close()


async def unsettled(name: str) -> int:
    """Messages of the stream not yet acked or dead-lettered (pending or leased)."""
    connection = await nats.connect(NATS)
    try:
        topic = Topic.of(name, "flights")
        info = await connection.jetstream().consumer_info(topic.stream, topic.consumer)
        return (info.num_pending or 0) + (info.num_ack_pending or 0)
    finally:
        await connection.close()


def summary(client: TestClient) -> dict[str, Any]:
    [flights] = client.get("/v1/datasets").json()["datasets"]
    return dict(flights)


def listing(client: TestClient, route: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/datasets/flights/{route}?limit=1000").json()[
        "items"
    ]
    return items


def test_events_published_without_headers_each_end_in_a_row_or_the_quarantine(
    names: str,
) -> None:
    """No Nats-Msg-Id: three valid events without an id are three rows (never one row with id
    ''), and invalid UTF-8 and 900 KB bodies reach the quarantine with their reasons."""
    valid = orjson.dumps({k: v for k, v in flight_event(1).items() if k != "id"})
    nul = orjson.dumps(flight_event(2, gate="G" * 900_000 + "\x00"))
    bodies = [valid, valid, valid, b'{"flight_id": "\xff\xfe"}', nul, b"[" * 900_000]
    with TestClient(create_app(Runtime(settings_for(names)))) as client:
        asyncio.run(publish_raw(names, bodies))
        wait_until(
            lambda: summary(client)["rows"] == 3 and summary(client)["quarantined"] == 3,
            what="three rows and three quarantined",
        )
        ids = [item["id"] for item in listing(client, "events")]
        assert len(set(ids)) == 3
        assert all(ids)
        reasons = sorted(item["reason"] for item in listing(client, "quarantine"))
        assert len({item["id"] for item in listing(client, "quarantine")}) == 3
        assert reasons[0].startswith("U+0000 (NUL) is not allowed in text")
        assert reasons[0].endswith("- at $.gate")
        assert all(r.startswith("not valid JSON") for r in reasons[1:])
        wait_until(lambda: asyncio.run(unsettled(names)) == 0, what="every message settled")


def test_a_poison_event_and_its_batch_each_end_stored_quarantined_or_dead_lettered(
    names: str,
) -> None:
    """Posted over HTTP: 300 valid events around a 900 KB event holding a NUL (202, the NUL one
    rejected). Straight onto NATS: an event of exactly max_payload that the store refuses, whose
    dead letter cannot hold all of it. Every valid event is stored once, the NUL one quarantined,
    the big one dead-lettered with a reference to the whole, nothing left in the stream."""
    settings = settings_for(names)
    store = Refusing(create_store(settings), "poison-")
    runtime = Runtime(settings, store=store)
    events = [flight_event(i) for i in range(300)]
    nul = flight_event(1000, gate="G" * 900_000 + "\x00")
    with TestClient(create_app(runtime)) as client:
        answer = client.post("/v1/datasets/flights/events", content=orjson.dumps([*events, nul]))
        assert answer.status_code == 202
        assert answer.json()["accepted"] == 300
        [rejected] = answer.json()["rejected"]
        assert rejected["index"] == 300
        assert "U+0000" in rejected["error"]
        edge = flight_event(2000, id="poison-edge", gate="")
        padding = len(orjson.dumps(edge))
        limit = asyncio.run(publish_raw(names, []))
        edge["gate"] = "x" * (limit - padding)
        body = orjson.dumps(edge)
        assert len(body) == limit
        asyncio.run(publish_raw(names, [body]))

        def settled() -> bool:
            flights = summary(client)
            return (
                flights["rows"] == 300
                and flights["quarantined"] == 1
                and len(listing(client, "deadletter")) == 1
            )

        wait_until(settled, timeout=60, what="every message stored, quarantined or dead")
        stored = [item["id"] for item in listing(client, "events")]
        assert sorted(stored) == sorted(str(e["id"]) for e in events)
        [letter] = listing(client, "deadletter")
        assert letter["reason"].startswith("store refused it: cannot store an event named poison-")
        assert letter["truncated"]["size"] == limit
        wait_until(lambda: asyncio.run(unsettled(names)) == 0, what="nothing left in the stream")
        metrics = runtime.metrics
        assert metrics.events_dead_lettered.labels("flights", "terminal_error")._value.get() == 1
        assert metrics.events_quarantined.labels("flights", "schema")._value.get() == 1


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


async def test_the_worker_resumes_as_soon_as_nats_is_back(
    own_server: NatsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a backoff of ten minutes, only the pings can bring the worker back in time."""
    monkeypatch.setattr(worker_module, "_backoff", lambda attempt: 600.0)
    settings = helpers.settings(
        broker_url=own_server.url,
        store_url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        lease_seconds=2,
        batch_wait=0.05,
    )
    broker, store = create_broker(settings), create_store(settings)
    await broker.open(CATALOG.names)
    await store.open(list(CATALOG))
    worker = Worker(broker, store, CATALOG, settings, Metrics())
    task = asyncio.create_task(worker.run())

    async def rows(count: int) -> bool:
        return (await store.summary(FLIGHTS)).rows == count

    async def published(events: list[dict[str, object]]) -> bool:
        try:
            await broker.publish(
                "flights", [Outgoing(str(e["id"]), orjson.dumps(e)) for e in events]
            )
        except BackendUnavailable:
            return False
        return True

    try:
        await published([flight_event(i) for i in range(5)])
        await eventually(lambda: rows(5), what="the first events stored")
        with caplog.at_level(logging.WARNING, logger="slipstream.worker"):
            own_server.stop()

            async def backing_off() -> bool:
                return any("broker unavailable" in r.getMessage() for r in caplog.records)

            await eventually(backing_off, what="the worker to see the outage")
        own_server.start()
        await eventually(lambda: published([flight_event(i) for i in range(5, 10)]), what="NATS")
        started = time.monotonic()
        await eventually(lambda: rows(10), timeout=60, what="the worker to resume")
        assert time.monotonic() - started < 600  # not the backoff: the pings woke it
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await broker.close()
        await store.close()
