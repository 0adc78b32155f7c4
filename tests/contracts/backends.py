"""Every backend the contract suites run over: one entry per backend.

SLIPSTREAM_TEST_BACKENDS=local,duckdb (comma separated names) narrows the run; by default every
backend whose service is reachable runs. Each factory gets a unique name and a temp directory, so
tests never share a topic, queue or table.

A broker entry also says how another client publishes onto it with that service's own client and
no attributes at all (`publish_raw`), as producers that skip Slipstream do. What a broker can do
(its lease floor and granularity, its fewest deliveries, its message size limit, who buries a
worn-out message) is not written here: the suites read the broker's own `capabilities`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slipstream.brokers import BrokerCapabilities, Outgoing, capabilities_for, create_broker
from slipstream.config import Settings
from slipstream.stores import Store, create_store
from tests import helpers
from tests.services import bigquery_emulator, moto, port_open, pubsub

# Publishes bodies onto a dataset's topic as another client would: (settings, dataset, bodies).
RawPublish = Callable[[Settings, str, Sequence[bytes]], Awaitable[None]]


@dataclass(frozen=True)
class Backend:
    name: str
    # Given a temp dir and a unique token, the settings that point at a fresh instance.
    settings: Callable[[Path, str], Settings]
    # Returns None when usable, else why not (the test then skips, or fails in CI).
    unavailable: Callable[[], str | None] = lambda: None
    # Removes what a test made under its token, where closing the backend leaves it behind.
    cleanup: Callable[[str], Coroutine[Any, Any, None]] | None = None
    publish_raw: RawPublish | None = None
    # Bytes of the largest message publish_raw gets accepted, where that is not the broker's
    # own `max_message_bytes` (a service that takes more than the broker sends, an emulator).
    largest_raw: int | None = None
    # Makes the store of `settings`, where the URL alone cannot (an emulator's endpoint).
    store_factory: Callable[[Settings], Store] | None = None
    # Contract tests the stand-in service cannot pass where the real one does: name -> why.
    # Each reason is a documented difference of the emulator, never a fault of the backend.
    emulator_differs: Mapping[str, str] = field(default_factory=dict)
    # Messages the volume test sends. moto answers every SQS call by walking the whole queue, so
    # on it a thousand messages took 80 s of a 2-core machine; it sends fewer (the behaviour
    # tested, each message delivered once, is the same).
    volume: int = 1000

    def open_store(self, settings: Settings) -> Store:
        """The store `settings` name, not opened yet."""
        return (self.store_factory or create_store)(settings)


async def drop_nats_streams(prefix: str) -> None:
    """JetStream keeps a test's streams after the broker closes; delete those of `prefix`."""
    import nats

    connection = await nats.connect("nats://127.0.0.1:4222")
    try:
        jetstream = connection.jetstream()
        for info in await jetstream.streams_info():
            if info.config.name and info.config.name.startswith(f"{prefix.upper()}_"):
                await jetstream.delete_stream(info.config.name)
    finally:
        await connection.close()


def quickest(capabilities: BrokerCapabilities) -> dict[str, object]:
    """The shortest lease and the fewest deliveries the broker honours as they are, so that the
    suite runs fast: 1 s and 3, or the service's floors (Pub/Sub: 10 s, 5). Where leases come in
    whole steps, two of them: a pull waiting 1.2 s long-polls SQS for 2 s, which would meet the
    end of a 2 s nack delay with a 1 s lease."""
    lease = max(capabilities.lease_for(1.0), 2 * capabilities.lease_step)
    return {"lease_seconds": lease, "max_deliveries": max(3, capabilities.min_deliveries)}


def broker_at(url: str) -> Callable[[Path, str], Settings]:
    """The settings of a broker at `url` (`{token}` in it replaced by the test's token)."""

    def settings(tmp: Path, token: str) -> Settings:
        concrete = url.format(tmp=tmp, token=token)
        return helpers.settings(broker_url=concrete, **quickest(capabilities_for(concrete)))

    return settings


async def drop_postgres_schema(schema: str) -> None:
    """Drop a test's schema and all in it (closing the store leaves it behind)."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


BIGQUERY_PROJECT = bigquery_emulator.project


def bigquery_store(settings: Settings) -> Store:
    """The bigquery:// store of `settings`, its client talking to the emulator."""
    from slipstream.stores.bigquery import BigQueryStore
    from slipstream.stores.bigquery_schema import Target, parse_url

    def client(target: Target) -> Any:
        return bigquery_emulator.client(target.project, target.location)

    return BigQueryStore(
        parse_url(settings.store_url),
        create_resources=settings.create_resources,
        client_factory=client,
    )


async def drop_bigquery_dataset(name: str) -> None:
    """Drop a test's BigQuery dataset and its tables (closing the store leaves them behind)."""

    def drop() -> None:
        client = bigquery_emulator.client(BIGQUERY_PROJECT)
        try:
            client.delete_dataset(name, delete_contents=True, not_found_ok=True)
        finally:
            client.close()  # type: ignore[no-untyped-call]

    await asyncio.to_thread(drop)


async def publish_local(settings: Settings, dataset: str, bodies: Sequence[bytes]) -> None:
    """Another process's broker on the same file, publishing without keys."""
    broker = create_broker(settings)
    await broker.open([dataset])
    try:
        await broker.publish(dataset, [Outgoing("", body) for body in bodies])
    finally:
        await broker.close()


async def publish_nats(settings: Settings, dataset: str, bodies: Sequence[bytes]) -> None:
    """nats-py's JetStream publish, without headers (so without Nats-Msg-Id)."""
    import nats

    from slipstream.brokers.nats_resources import Topic, parse_url

    server, options = parse_url(settings.broker_url)
    connection = await nats.connect(server.servers)
    try:
        jetstream = connection.jetstream()
        for body in bodies:
            await jetstream.publish(Topic.of(options.prefix, dataset).subject, body)
    finally:
        await connection.close()


async def publish_sqs(settings: Settings, dataset: str, bodies: Sequence[bytes]) -> None:
    """boto3, without message attributes: to the topic with SNS, else to the queue."""
    import boto3  # type: ignore[import-untyped]

    from slipstream.brokers.sqs_resources import names_for, parse_url

    target = parse_url(settings.broker_url)
    names = names_for(target, dataset)

    def send() -> None:
        if target.sns:
            sns = boto3.client("sns", region_name=target.region)
            arn = sns.create_topic(Name=names.topic)["TopicArn"]  # exists: returns its ARN
            for body in bodies:
                sns.publish(TopicArn=arn, Message=body.decode())
            return
        sqs = boto3.client("sqs", region_name=target.region)
        url = sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=body.decode())

    await asyncio.to_thread(send)


async def publish_pubsub(settings: Settings, dataset: str, bodies: Sequence[bytes]) -> None:
    """google-cloud-pubsub's PublisherClient, without attributes."""
    from google.cloud import pubsub_v1

    from slipstream.brokers.pubsub_resources import names_for, parse_url

    topic = names_for(parse_url(settings.broker_url), dataset).topic

    def send() -> None:
        publisher = pubsub_v1.PublisherClient()
        try:
            for future in [publisher.publish(topic, body) for body in bodies]:
                future.result(timeout=60)
        finally:
            publisher.stop()

    await asyncio.to_thread(send)


BROKER_BACKENDS = [
    Backend(
        "local",
        broker_at("local:///{tmp}/queue.db"),
        publish_raw=publish_local,
        largest_raw=4 * 1024 * 1024,  # no limit of its own: a size no other broker takes
    ),
    Backend(
        "nats",
        broker_at("nats://127.0.0.1:4222?prefix=t{token}&max_age=3600"),
        lambda: None if port_open("127.0.0.1", 4222) else "nothing listens on 127.0.0.1:4222",
        lambda token: drop_nats_streams(f"t{token}"),
        publish_raw=publish_nats,
    ),
    Backend(
        "pubsub",
        broker_at("pubsub://test-project?prefix=t{token}"),
        pubsub.unavailable,
        publish_raw=publish_pubsub,
        # Pub/Sub takes 10 MB, but the emulator delivers no message over gRPC's default 4 MiB
        # (test_pubsub_broker.py sizes letters near 10 MB without it).
        largest_raw=4_000_000,
    ),
    Backend(
        "sqs",  # SNS→SQS
        broker_at("sqs://us-east-1?prefix=t{token}"),
        moto.unavailable,
        lambda token: moto.delete_resources(f"t{token}"),
        publish_raw=publish_sqs,
        volume=250,
    ),
    Backend(
        "sqs-direct",
        broker_at("sqs://us-east-1?prefix=t{token}&sns=false"),
        moto.unavailable,
        lambda token: moto.delete_resources(f"t{token}"),
        publish_raw=publish_sqs,
        largest_raw=1024 * 1024,  # SQS's (and moto's) limit, over the broker's own 256 KiB
        volume=250,
    ),
]

POSTGRES_URL = os.environ.get(
    "SLIPSTREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_PG = urlsplit(POSTGRES_URL)
STORE_BACKENDS = [
    Backend(
        "duckdb",
        lambda tmp, token: helpers.settings(store_url=f"duckdb:///{tmp / 'warehouse.duckdb'}"),
    ),
    Backend(
        "postgres",
        # A schema per test, dropped after it.
        lambda tmp, token: helpers.settings(
            store_url=f"{POSTGRES_URL}?schema=t_{token}&pool_min=1"
        ),
        lambda: (
            None if port_open(_PG.hostname or "", _PG.port or 5432) else f"{_PG.netloc} is closed"
        ),
        lambda token: drop_postgres_schema(f"t_{token}"),
    ),
    Backend(
        "bigquery",
        # A BigQuery dataset per test, on bqemulator, dropped after it.
        lambda tmp, token: helpers.settings(store_url=f"bigquery://{BIGQUERY_PROJECT}/t_{token}"),
        bigquery_emulator.unavailable,
        lambda token: drop_bigquery_dataset(f"t_{token}"),
        store_factory=bigquery_store,
        emulator_differs={
            "test_an_added_optional_field_becomes_a_column": (
                "bqemulator's update_table changes the table's metadata only: the column the "
                "store adds is not there for the MERGE (BigQuery adds it)"
            ),
        },
    ),
]


def selected(backends: list[Backend]) -> list[Backend]:
    wanted = os.environ.get("SLIPSTREAM_TEST_BACKENDS")
    if not wanted:
        return backends
    names = {n.strip() for n in wanted.split(",")}
    return [b for b in backends if b.name in names]
