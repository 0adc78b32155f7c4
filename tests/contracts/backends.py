"""Every backend the contract suites run over: one entry per backend.

SLIPSTREAM_TEST_BACKENDS=local,duckdb (comma separated names) narrows the run; by default every
backend whose service is reachable runs. Each factory gets a unique name and a temp directory, so
tests never share a topic, queue or table.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from slipstream.config import Settings
from tests import moto_server, pubsub_emulator
from tests.conftest import port_open


@dataclass(frozen=True)
class Backend:
    name: str
    # Given a temp dir and a unique token, the settings that point at a fresh instance.
    settings: Callable[[Path, str], Settings]
    # Returns None when usable, else why not (the test then skips, or fails in CI).
    unavailable: Callable[[], str | None] = lambda: None
    # Removes what a test made under its token, where closing the backend leaves it behind.
    cleanup: Callable[[str], Awaitable[None]] | None = None


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


def _settings(tmp: Path, **values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


BROKER_BACKENDS = [
    Backend(
        "local",
        lambda tmp, token: _settings(
            tmp, broker_url=f"local:///{tmp / 'queue.db'}", lease_seconds=1, max_deliveries=3
        ),
    ),
    Backend(
        "nats",
        lambda tmp, token: _settings(
            tmp,
            broker_url=f"nats://127.0.0.1:4222?prefix=t{token}&max_age=3600",
            lease_seconds=1,
            max_deliveries=3,
        ),
        lambda: None if port_open("127.0.0.1", 4222) else "nothing listens on 127.0.0.1:4222",
        lambda token: drop_nats_streams(f"t{token}"),
    ),
    Backend(
        "pubsub",
        # Pub/Sub's floors: 10 s ack deadline, 5 delivery attempts (docs/backends/pubsub.md).
        lambda tmp, token: _settings(
            tmp,
            broker_url=f"pubsub://test-project?prefix=t{token}",
            lease_seconds=10,
            max_deliveries=5,
        ),
        pubsub_emulator.unavailable,
    ),
    Backend(
        "sqs",
        # SNS→SQS. A 2 s lease: SQS counts whole seconds, so a pull waiting 1.2 s long-polls 2 s,
        # which would meet the end of a 2 s nack delay with a 1 s lease (docs/backends/sqs.md).
        lambda tmp, token: _settings(
            tmp, broker_url=f"sqs://us-east-1?prefix=t{token}", lease_seconds=2, max_deliveries=3
        ),
        moto_server.unavailable,
        lambda token: moto_server.delete_resources(f"t{token}"),
    ),
    Backend(
        "sqs-direct",
        lambda tmp, token: _settings(
            tmp,
            broker_url=f"sqs://us-east-1?prefix=t{token}&sns=false",
            lease_seconds=2,
            max_deliveries=3,
        ),
        moto_server.unavailable,
        lambda token: moto_server.delete_resources(f"t{token}"),
    ),
]

POSTGRES_URL = os.environ.get(
    "SLIPSTREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_PG = urlsplit(POSTGRES_URL)
STORE_BACKENDS = [
    Backend(
        "duckdb",
        lambda tmp, token: _settings(tmp, store_url=f"duckdb:///{tmp / 'warehouse.duckdb'}"),
    ),
    Backend(
        "postgres",
        # A schema per test, dropped when the store closes (drop_schema_on_close is test-only).
        lambda tmp, token: _settings(
            tmp,
            store_url=f"{POSTGRES_URL}?schema=t_{token}&drop_schema_on_close=true&pool_min=1",
        ),
        lambda: (
            None if port_open(_PG.hostname or "", _PG.port or 5432) else f"{_PG.netloc} is closed"
        ),
    ),
]


def selected(backends: list[Backend]) -> list[Backend]:
    wanted = os.environ.get("SLIPSTREAM_TEST_BACKENDS")
    if not wanted:
        return backends
    names = {n.strip() for n in wanted.split(",")}
    return [b for b in backends if b.name in names]
