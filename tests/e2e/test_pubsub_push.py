"""Pub/Sub push into a real `slipstream up`: the emulator pushes each message to
/push/pubsub/flights, Slipstream makes it durable on its own (local) broker, DuckDB stores it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from google.cloud import pubsub_v1

from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until
from tests.services import pubsub

pytestmark = pytest.mark.e2e
EVENTS = 200
WITHOUT_ID = 20  # these get the Pub/Sub messageId as their id


@pytest.fixture
def server(tmp_path: Path, pubsub_emulator: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path).start()
    yield process
    process.kill()


@pytest.fixture
def push_topic(server: ServerProcess) -> Iterator[str]:
    """A fresh emulator topic with a push subscription aimed at the server."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    name = f"push-{uuid.uuid4().hex[:12]}"
    topic = publisher.topic_path(pubsub.project, name)
    subscription = subscriber.subscription_path(pubsub.project, name)
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(
        request={
            "name": subscription,
            "topic": topic,
            "push_config": {"push_endpoint": f"{server.url}/push/pubsub/flights"},
            "ack_deadline_seconds": 10,
        }
    )
    yield topic
    subscriber.delete_subscription(request={"subscription": subscription})
    publisher.delete_topic(request={"topic": topic})
    subscriber.close()


def test_pushed_messages_land_exactly_once(server: ServerProcess, push_topic: str) -> None:
    events = [flight_event(i, prefix="push") for i in range(EVENTS)]
    for event in events[:WITHOUT_ID]:
        del event["id"]
    publisher = pubsub_v1.PublisherClient()
    futures = [publisher.publish(push_topic, orjson.dumps(event)) for event in events]
    message_ids = [future.result(timeout=30) for future in futures]
    publisher.stop()
    expected = set(message_ids[:WITHOUT_ID]) | {str(e["id"]) for e in events[WITHOUT_ID:]}
    assert len(expected) == EVENTS

    with server.client() as client:

        def all_landed() -> list[str]:
            found = stored_ids(client)
            return found if set(found) >= expected else []

        ids = wait_until(
            all_landed,
            # The emulator, shared by the whole run and loaded by the tests before, has taken
            # over a minute to start pushing in a full CI run.
            timeout=150,
            interval=0.25,
            what=f"{EVENTS} pushed events in the store ({server.log_path})",
        )
        assert sorted(ids) == sorted(expected), "every pushed event exactly once"
        dataset = client.get("/v1/datasets").json()["datasets"][0]
        assert dataset["rows"] == EVENTS
        first = client.get(f"/v1/datasets/flights/events/{message_ids[0]}").json()
        assert first["flight_id"] == events[0]["flight_id"]
