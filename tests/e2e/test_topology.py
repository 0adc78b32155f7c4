"""Production topology: `slipstream api` plus two `slipstream worker`s on real services.

Events are posted (10,000 on NATS) while one worker is SIGKILLed mid-stream; every accepted event
must end up in PostgreSQL exactly once (the killed worker's leased messages come back after the
lease and the other worker stores them; the primary key absorbs any redelivery).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.contracts.backends import drop_nats_streams
from tests.e2e.harness import ServerProcess, WorkerProcess, stored_ids
from tests.helpers import flight_event, wait_until
from tests.services import moto, port_open, service_missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def nats_env(token: str) -> dict[str, str]:
    if not port_open("127.0.0.1", 4222):
        service_missing("NATS", "nothing listens on 127.0.0.1:4222")
    return {"SLIPSTREAM_BROKER_URL": f"nats://127.0.0.1:4222?prefix=topo{token}&max_age=3600"}


def sqs_env(token: str) -> dict[str, str]:
    return {**moto.env(), "SLIPSTREAM_BROKER_URL": f"sqs://us-east-1?prefix=topo{token}"}


@pytest.fixture
def schema() -> Iterator[str]:
    if not port_open("127.0.0.1", 5432):
        service_missing("PostgreSQL", "nothing listens on 127.0.0.1:5432")
    name = f"topo_{uuid.uuid4().hex[:10]}"
    yield name
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    if port_open("127.0.0.1", 4222):
        asyncio.run(drop_nats_streams(f"topo{name}"))


# moto, the local stand-in for SQS, handles a few hundred messages a second, and slows down as a
# queue grows (every call walks the whole queue: a thousand messages here took over two minutes
# to drain); its run is smaller so the suite stays within minutes.
@pytest.mark.parametrize(
    ("broker_env", "events", "batch"),
    [(nats_env, 10_000, 500), (sqs_env, 250, 50)],
    ids=["nats", "sqs"],
)
def test_api_and_two_workers_lose_nothing_when_one_is_killed(
    tmp_path: Path,
    schema: str,
    broker_env: Callable[[str], dict[str, str]],
    events: int,
    batch: int,
) -> None:
    env = {
        **broker_env(schema),
        "SLIPSTREAM_STORE_URL": f"{POSTGRES}?schema={schema}",
        "SLIPSTREAM_LEASE_SECONDS": "5",
        "SLIPSTREAM_BATCH_SIZE": str(batch),
    }
    api = ServerProcess(tmp_path, env, command="api").start()
    workers = [WorkerProcess(tmp_path, env).start() for _ in range(2)]
    accepted: list[str] = []
    try:
        with api.client() as client:
            for start in range(0, events, batch):
                body = b"\n".join(
                    orjson.dumps(flight_event(n, prefix="topo"))
                    for n in range(start, start + batch)
                )
                answer = client.post(
                    "/v1/datasets/flights/events",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson"},
                )
                assert answer.status_code == 202, answer.text
                accepted += answer.json()["ids"]
                if start == 3 * batch:
                    # Mid-stream, once the worker has leased something.
                    wait_until(
                        lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] > 0,
                        what="the workers to start storing",
                    )
                    workers[0].kill()
            assert workers[1].alive(), workers[1].log()

            def all_stored() -> bool:
                return bool(client.get("/v1/datasets").json()["datasets"][0]["rows"] >= events)

            wait_until(all_stored, timeout=120, interval=0.5, what=f"{events} rows in PostgreSQL")
            ids = stored_ids(client)
            assert len(ids) == len(set(ids)), "an event was stored twice"
            assert set(ids) == set(accepted)
    finally:
        for worker in workers:
            worker.kill()
        api.kill()
