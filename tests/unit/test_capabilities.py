"""Each broker declares what it can do in one typed object, and its callers read only that.

The runtime's back-pressure, the API's dead letter ids and the brokers' own lease rounding all
follow the declaration: a broker that says otherwise (a real one, wrapped) is taken at its word.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.brokers import (
    BROKERS,
    ROW_ID,
    TIMED_ID,
    Broker,
    BrokerCapabilities,
    BrokerSettings,
    IdShape,
    capabilities_for,
    create_broker,
)
from slipstream.brokers.pubsub_resources import limits
from slipstream.brokers.sqs_resources import lease, visibility
from slipstream.config import Settings
from slipstream.runtime import Runtime
from tests import helpers

URLS = {
    "local": "local:///./queue.db",
    "nats": "nats://127.0.0.1:4222",
    "pubsub": "pubsub://my-project",
    "sqs": "sqs://us-east-1",
}


def settings(tmp_path: Path) -> Settings:
    return helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    )


class Declaring:
    """A real broker that declares other capabilities than its own."""

    def __init__(self, inner: Broker, capabilities: BrokerCapabilities) -> None:
        self.inner, self.capabilities = inner, capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_every_broker_in_the_registry_declares_its_capabilities() -> None:
    assert set(URLS) == set(BROKERS)
    declared = {scheme: capabilities_for(url) for scheme, url in URLS.items()}
    assert all(isinstance(c, BrokerCapabilities) for c in declared.values())
    assert declared["local"].dead_letter_ids == ROW_ID
    assert (declared["pubsub"].counts_backlog, declared["pubsub"].min_deliveries) == (False, 5)
    assert declared["sqs"].max_message_bytes == 256 * 1024
    assert declared["sqs"].worn_out_by == "service"
    assert declared["nats"].max_message_bytes is None  # the server's, once connected


def test_leases_follow_the_declared_floor_ceiling_and_step() -> None:
    pubsub, sqs = capabilities_for(URLS["pubsub"]), capabilities_for(URLS["sqs"])
    assert [pubsub.lease_for(s) for s in (1, 10.2, 3600)] == [10, 11, 600]
    assert [pubsub.delay_for(s) for s in (0, -1, 0.2, 3600)] == [0, 0, 1, 600]
    assert [sqs.lease_for(s) for s in (0.2, 1.5, 10**6)] == [1, 2, 43_200]
    assert capabilities_for(URLS["local"]).lease_for(0.25) == 0.25  # any duration
    # The brokers round with the same declaration.
    assert (lease(1.5), visibility(0), visibility(0.2)) == (2, 0, 1)
    clamped = limits(BrokerSettings(lease_seconds=1, max_deliveries=3))
    assert (clamped.ack_deadline, clamped.policy_attempts) == (10, 5)


async def test_the_runtime_asks_no_backlog_of_a_broker_that_declares_it_cannot_count(
    tmp_path: Path,
) -> None:
    local = create_broker(settings(tmp_path))

    class Uncounted(Declaring):
        async def backlog(self, dataset: str) -> int:
            raise AssertionError("asked the backlog of a broker that counts none")

    uncounted = Uncounted(local, replace(local.capabilities, counts_backlog=False))
    runtime = Runtime(settings(tmp_path), broker=uncounted, with_worker=False)
    await runtime.start()
    try:
        await runtime.broker.publish("flights", [])
        assert runtime.refusal("flights") is None
    finally:
        await runtime.stop()


@pytest.mark.parametrize(("shape", "status"), [(ROW_ID, 200), (TIMED_ID, 400)])
def test_the_api_refuses_dead_letter_ids_of_another_shape_than_the_broker_declares(
    tmp_path: Path, shape: IdShape, status: int
) -> None:
    local = create_broker(settings(tmp_path))
    declaring = Declaring(local, replace(local.capabilities, dead_letter_ids=shape))
    runtime = Runtime(settings(tmp_path), broker=declaring, with_worker=False)
    with TestClient(create_app(runtime)) as client:
        answer = client.post("/v1/datasets/flights/deadletter/replay", json={"ids": ["12"]})
    assert answer.status_code == status, answer.text
