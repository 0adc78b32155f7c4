"""What the bench runs: the broker/store pairs, the workload sizes, and the floors we hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

from slipstream.bench.services import (
    RUN,
    Cleanup,
    Installed,
    Reachable,
    Requirement,
    Started,
    delete_streams,
    drop_schema,
    moto_server,
)

DATASET = "flights"

# The floors (docs/performance.md), for a 2-core machine.
INGEST_FLOOR = 20_000.0  # events/s, first post → all queryable
FRESHNESS_P99_FLOOR = 1.0  # seconds, under INGEST_FLOOR events/s
GET_P99_FLOOR = 0.020  # seconds, at 50 connections
# A second paced run, at the rate the ingest path is built for: its freshness is reported (target
# p99 ≤ FAST_P99_TARGET), not held as a floor.
FAST_RATE = 50_000.0  # events/s
FAST_P99_TARGET = 1.0  # seconds


@dataclass(frozen=True)
class Pair:
    """A broker/store pair: its name in the table, the settings that select it, and how it runs.

    `env` values may hold "{run}", replaced by a name unique to each server started (a NATS
    prefix, a PostgreSQL schema), and `cleanup` removes what that server created once it has
    stopped. `requires` says why the pair cannot run on this machine: it is then reported as
    skipped, not failed. `service` is started once for the pair (moto) and gives settings of
    its own. `workers=0` runs `slipstream up`; N runs `slipstream api` and N workers.
    """

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 0
    requires: tuple[Requirement, ...] = ()
    service: Callable[[], AbstractContextManager[Started]] | None = None
    cleanup: tuple[Cleanup, ...] = ()
    scale: float = 1.0  # of the events of every ingest, and of the paced rate
    batch: int | None = None  # events per request, when not the default
    reads: bool = True  # the read workloads and the naive baseline, besides the two ingests
    floors: frozenset[str] = frozenset({"ingest", "freshness", "get"})
    note: str = ""  # said under the table

    @property
    def server_processes(self) -> tuple[str, ...]:
        """The names of the pair's server processes on this machine (NATS, PostgreSQL)."""
        return tuple(p for r in self.requires if (p := getattr(r, "process", "")))

    def params(self, params: Params) -> Params:
        """The workload sizes for this pair: the common ones, scaled down for a slow pair."""
        if self.scale == 1.0 and self.batch is None:
            return params
        batch = self.batch or params.batch
        return replace(
            params,
            events=max(batch, round(params.events * self.scale)),
            batch=batch,
            paced_rate=params.paced_rate * self.scale,
            fast_rate=params.fast_rate * self.scale,
            naive_events=max(50, round(params.naive_events * self.scale)),
        )


LOCAL = Pair("local/duckdb")
NATS_POSTGRESQL = Pair(
    "nats/postgresql (2 workers)",
    {
        "SLIPSTREAM_BROKER_URL": f"nats://127.0.0.1:4222?prefix={RUN}",
        "SLIPSTREAM_STORE_URL": f"postgresql://postgres@127.0.0.1:5432/test?schema={RUN}",
    },
    workers=2,
    requires=(
        Installed("nats", "pip install 'slipstream[nats]'"),
        Installed("psycopg", "pip install 'slipstream[postgres]'"),
        Installed("psycopg_pool", "pip install 'slipstream[postgres]'"),
        Reachable("NATS", "127.0.0.1", 4222, "nats-server"),
        Reachable("PostgreSQL", "127.0.0.1", 5432, "postgres"),
    ),
    cleanup=(delete_streams, drop_schema),
    floors=frozenset({"ingest"}),
)
SQS_MOTO_POSTGRESQL = Pair(
    "sqs-moto/postgresql (2 workers)",
    {
        "SLIPSTREAM_BROKER_URL": f"sqs://us-east-1?prefix={RUN}",
        "SLIPSTREAM_STORE_URL": f"postgresql://postgres@127.0.0.1:5432/test?schema={RUN}",
    },
    workers=2,
    requires=(
        Installed("boto3", "pip install 'slipstream[aws]'"),
        Installed("moto.server", "pip install 'moto[server]'"),
        Installed("psycopg", "pip install 'slipstream[postgres]'"),
        Installed("psycopg_pool", "pip install 'slipstream[postgres]'"),
        Installed("slipstream.brokers.sqs", load=True),
        Reachable("PostgreSQL", "127.0.0.1", 5432, "postgres"),
    ),
    service=moto_server,
    cleanup=(drop_schema,),  # SQS queues and SNS topics go with the moto process
    scale=0.005,
    batch=100,
    reads=False,
    floors=frozenset(),
    note="sqs-moto: SNS→SQS served by a local moto_server, a stand-in for AWS, not AWS itself: "
    "its figures say what the broker code and moto cost here, not what AWS would do (moto's "
    "every call grows with the queue's depth, hence the small workload). Its reads would "
    "measure the same PostgreSQL store as nats/postgresql's.",
)
PAIRS: tuple[Pair, ...] = (LOCAL, NATS_POSTGRESQL, SQS_MOTO_POSTGRESQL)


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
    fast_rate: float  # events/s of a second paced run, freshness near the target rate
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
    fast_rate=FAST_RATE,
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
    fast_rate=FAST_RATE,
    naive_events=600,
    read_seconds=3.0,
    read_warmup=0.5,
    read_connections=50,
    drain_timeout=30.0,
)
