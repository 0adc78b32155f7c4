"""What the bench runs: the broker/store pairs, the workload sizes, and the floors we hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DATASET = "flights"

# The floors (docs/performance.md), for a 2-core machine.
INGEST_FLOOR = 20_000.0  # events/s, first post → all queryable
FRESHNESS_P99_FLOOR = 1.0  # seconds, under INGEST_FLOOR events/s
GET_P99_FLOOR = 0.020  # seconds, at 50 connections


@dataclass(frozen=True)
class Pair:
    """A broker/store pair: its name in the table and the server settings that select it.

    Another pair is one more entry in PAIRS, for example
    `Pair("nats/postgresql", {"SLIPSTREAM_BROKER_URL": "nats://127.0.0.1:4222",
    "SLIPSTREAM_STORE_URL": "postgresql://bench@127.0.0.1/bench"})`.
    """

    name: str
    env: Mapping[str, str] = field(default_factory=dict)


PAIRS: tuple[Pair, ...] = (Pair("local/duckdb"),)


@dataclass(frozen=True)
class ReadScenario:
    figure: str
    path: str  # "{id}" is replaced by a known id, drawn at random
    hot_ids: int | None = None  # draw from this many ids (a set the read cache holds) only


READS = (
    ReadScenario("GET by id", f"/v1/datasets/{DATASET}/events/{{id}}"),
    ReadScenario(
        "GET by id, hot set (1,000 ids)", f"/v1/datasets/{DATASET}/events/{{id}}", hot_ids=1000
    ),
    ReadScenario("list ?limit=50", f"/v1/datasets/{DATASET}/events?limit=50"),
    ReadScenario(
        "list ?limit=50&status=landed", f"/v1/datasets/{DATASET}/events?limit=50&status=landed"
    ),
)


@dataclass(frozen=True)
class Params:
    events: int  # the batched flood
    batch: int  # events per request
    connections: int  # ingest connections
    paced_rate: float  # events/s of the paced run, which measures freshness at the floor
    paced_seconds: float
    naive_events: int  # one per request, worker batch size 1
    read_seconds: float
    read_warmup: float
    read_connections: int
    drain_timeout: float  # after the last post, for every accepted event to become queryable


FULL = Params(
    events=200_000,
    batch=1000,
    connections=4,
    paced_rate=INGEST_FLOOR,
    paced_seconds=10.0,
    naive_events=3000,
    read_seconds=10.0,
    read_warmup=1.0,
    read_connections=50,
    drain_timeout=60.0,
)
QUICK = Params(
    events=30_000,
    batch=1000,
    connections=4,
    paced_rate=INGEST_FLOOR,
    paced_seconds=3.0,
    naive_events=600,
    read_seconds=3.0,
    read_warmup=0.5,
    read_connections=50,
    drain_timeout=30.0,
)
