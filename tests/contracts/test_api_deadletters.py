"""Dead letters through the API on each broker: signed cursors page them, an id or cursor that
cannot be the broker's is a 400 (never a 5xx from the broker parsing it), and a time no datetime
can hold (a header set by whoever published straight onto the broker) does not break the list."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.api.cursors import Cursors
from slipstream.brokers import Broker, Delivery, Outgoing
from slipstream.brokers.nats_messages import PUBLISHED
from slipstream.config import Settings
from slipstream.runtime import Runtime
from tests import helpers
from tests.contracts.backends import BROKER_BACKENDS, Backend, drop_nats_streams, selected
from tests.services import service_missing

LIST = "/v1/datasets/flights/deadletter"
REPLAY = "/v1/datasets/flights/deadletter/replay"
BACKENDS = [b for b in selected(BROKER_BACKENDS) if b.name != "sqs-direct"]  # same ids as sqs


@dataclass
class Api:
    client: TestClient
    broker: Broker


def make_api(tmp_path: Path, broker_url: str) -> TestClient:
    settings = helpers.settings(
        broker_url=broker_url,
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        lease_seconds=10,
    )
    # No worker: the test alone pulls from the broker, and buries what it pulled.
    return TestClient(create_app(Runtime(settings, with_worker=False)))


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    backend: Backend = request.param
    why = backend.unavailable()
    if why:
        service_missing(backend.name, why)
    token = uuid.uuid4().hex[:12]
    broker_url = backend.settings(tmp_path, token).broker_url
    with make_api(tmp_path, broker_url) as client:
        yield Api(client, client.app.state.runtime.broker)  # type: ignore[attr-defined]
    if backend.cleanup is not None:
        asyncio.run(backend.cleanup(token))


async def pull(broker: Broker, count: int, within: float = 30) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived"
        got += await broker.pull("flights", count - len(got), 1.0)
    return got


async def bury(broker: Broker, count: int) -> None:
    messages = [Outgoing(f"k{i}", b'{"not": "an event"}') for i in range(count)]
    await broker.publish("flights", messages)
    await broker.dead_letter("flights", await pull(broker, count), "refused by the test")


def listed(client: TestClient, **params: str) -> list[dict[str, object]]:
    answer = client.get(LIST, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items


def test_dead_letters_page_on_signed_cursors_and_refuse_what_the_broker_never_issued(
    api: Api,
) -> None:
    client = api.client
    client.portal.call(bury, api.broker, 3)  # type: ignore[union-attr]
    first = client.get(LIST, params={"limit": 2}).json()
    cursor = first["next_cursor"]
    assert len(first["items"]) == 2
    rest = listed(client, cursor=cursor)
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in rest)
    assert len(first["items"]) + len(rest) == 3

    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for bad in (tampered, "WyJkZWFkbGV0dGVyOmZsaWdodHMiLCJ4Il0", "x" * 5000):
        answer = client.get(LIST, params={"cursor": bad})
        assert answer.status_code == 400
        assert "not one this API issued" in answer.json()["error"]["message"]
    # Signed by this deployment, but not an id of this broker (a cursor of another broker).
    settings: Settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    foreign = Cursors(settings.cursor_key()).encode("deadletter:flights", ["abc"])
    answer = client.get(LIST, params={"cursor": foreign})
    assert answer.status_code == 400
    assert "not one of this broker's" in answer.json()["error"]["message"]

    for ids in (["abc"], ["-1"], ["0"], ["99999999999999999999999"], ["1 "], ["١"]):
        answer = client.post(REPLAY, json={"ids": ids})
        if answer.status_code == 200:  # a broker whose ids are free text: nothing matches
            assert answer.json() == {"replayed": 0}, ids
        else:
            assert answer.status_code == 400, (ids, answer.text)
            assert "cannot name dead letters of this broker" in answer.json()["error"]["message"]
    wanted = str(first["items"][0]["id"])
    assert client.post(REPLAY, json={"ids": [wanted, wanted]}).json() == {"replayed": 1}
    assert wanted not in {i["id"] for i in listed(client)}


def test_integer_dead_letter_ids_are_refused_past_what_the_broker_holds(tmp_path: Path) -> None:
    with make_api(tmp_path, f"local:///{tmp_path / 'queue.db'}") as client:
        for ids in (["9223372036854775808"], ["18446744073709551616"]):
            assert client.post(REPLAY, json={"ids": ids}).status_code == 400
        assert client.post(REPLAY, json={"ids": ["9223372036854775807"]}).json() == {"replayed": 0}


async def publish_raw(subject: str, published_at: str) -> None:
    """As a producer publishing straight onto NATS, with a header of its own choosing."""
    connection = await nats.connect("nats://127.0.0.1:4222")
    try:
        await connection.jetstream().publish(
            subject, b'{"id": "raw-1"}', headers={PUBLISHED: published_at}
        )
    finally:
        await connection.close()


@pytest.mark.parametrize("published_at", ["1e300", "-1e300", "nan", "inf"])
def test_a_dead_letter_with_a_producer_time_out_of_range_is_listed_with_the_brokers(
    tmp_path: Path, published_at: str
) -> None:
    nats_backend = next(b for b in BROKER_BACKENDS if b.name == "nats")
    why = nats_backend.unavailable()
    if why:
        service_missing("nats", why)
    token = uuid.uuid4().hex[:12]
    try:
        with make_api(tmp_path, f"nats://127.0.0.1:4222?prefix=t{token}") as client:
            broker = client.app.state.runtime.broker  # type: ignore[attr-defined]
            portal = client.portal
            assert portal is not None
            portal.call(publish_raw, f"t{token}.flights", published_at)

            async def bury_one() -> None:
                await broker.dead_letter("flights", await pull(broker, 1), "refused")

            portal.call(bury_one)
            (item,) = listed(client)
            # The producer's time is ignored for the one NATS stored the message at.
            published = datetime.fromisoformat(str(item["published_at"]))
            assert abs(published - datetime.now(UTC)) < timedelta(hours=1)
            assert item["dead_at"] is not None
    finally:
        asyncio.run(drop_nats_streams(f"t{token}"))
