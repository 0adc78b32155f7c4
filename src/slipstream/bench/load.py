"""The load generator, run in its own process so it does not share an interpreter with the
server it measures: `python -m slipstream.bench.load` reads one job (JSON) on standard input and
writes its result (JSON) as the last line of standard output.

Two jobs: `ingest` posts simulated flight events as NDJSON batches (as fast as it can, or paced
at a rate) and waits until they are all queryable; `reads` keeps N connections busy with GETs for
a fixed time and records each request's latency.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from slipstream.bench.keepalive import ConnectionLost, KeepAliveClient
from slipstream.bench.stats import percentile

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")
EVENTS_PATH = "/v1/datasets/{dataset}/events"
NDJSON = {"Content-Type": "application/x-ndjson"}
POLL_INTERVAL = 0.05
REQUEST_TIMEOUT = 30.0
MAX_RETRY_WAIT = 5.0


@dataclass
class IngestJob:
    url: str
    events: int
    batch: int
    connections: int
    drain_timeout: float
    rate: float | None = None  # events/s; None: as fast as the server answers
    seed: int = 1
    dataset: str = "flights"
    ids_path: str | None = None
    # A part of one history: events `skip` to `skip + events` of `history` events whose last
    # falls at `history_end` (ISO 8601), so that parts sent one after another fill a store in
    # time order, as a year of live traffic would. None: events from now on.
    history_end: str | None = None
    history: int = 0
    skip: int = 0


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    baseline_rows: int = 0
    rows: int = 0  # rows seen at the end, baseline included
    post_seconds: float = 0.0
    total_seconds: float = 0.0  # first post → all accepted events queryable (or the deadline)
    complete: bool = False
    error: str | None = None


@dataclass
class ReadJob:
    url: str
    paths: list[str]  # picked at random; "{id}" is replaced by a random id from ids_path
    seconds: float
    connections: int
    warmup: float = 0.0
    ids_path: str | None = None
    id_pool: int | None = None  # draw ids from this many (a hot set) instead of from all
    seed: int = 2


@dataclass
class ReadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    distinct: int = 0  # distinct URLs requested (a repeated id may be served from a cache)
    p50: float | None = None  # seconds
    p99: float | None = None
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def ndjson_batches(events: list[dict[str, Any]], size: int) -> list[tuple[bytes, int]]:
    """NDJSON bodies of at most `size` events each, with their event counts."""
    line = orjson.OPT_APPEND_NEWLINE
    return [
        (
            b"".join(orjson.dumps(e, option=line) for e in events[i : i + size]),
            len(events[i : i + size]),
        )
        for i in range(0, len(events), size)
    ]


async def _rows(session: aiohttp.ClientSession, url: str, dataset: str) -> int:
    async with session.get(f"{url}/v1/datasets") as response:
        response.raise_for_status()
        body = orjson.loads(await response.read())
    return next(int(d["rows"]) for d in body["datasets"] if d["name"] == dataset)


def run_ingest(job: IngestJob) -> IngestResult:
    """Simulate the events and encode the bodies first, then post them: only HTTP is timed."""
    from slipstream.flights import FlightSimulator

    if job.history_end is None:
        simulator = FlightSimulator(seed=job.seed)
    else:
        end = datetime.fromisoformat(job.history_end)
        simulator = FlightSimulator.ending_by(end, job.history, seed=job.seed)
        simulator.skip(job.skip)
    events = simulator.next_events(job.events)
    if job.ids_path:  # for the GET-by-id phase, in random order
        ids = [str(e["id"]) for e in events]
        random.Random(job.seed).shuffle(ids)
        Path(job.ids_path).write_text("\n".join(ids) + "\n")
    batches = ndjson_batches(events, job.batch)
    del events
    return _run(_ingest(job, batches))


async def _ingest(job: IngestJob, batches: list[tuple[bytes, int]]) -> IngestResult:
    import aiohttp

    result = IngestResult()
    post_url = job.url + EVENTS_PATH.format(dataset=job.dataset)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=job.connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result.baseline_rows = await _rows(session, job.url, job.dataset)
        queue: asyncio.Queue[tuple[int, bytes, int]] = asyncio.Queue()
        for number, (body, count) in enumerate(batches):
            queue.put_nowait((number, body, count))
        start = time.perf_counter()
        # A server answering 503 all along must not keep the run going: retries end here.
        give_up = start + (job.events / job.rate if job.rate else 0.0) + job.drain_timeout

        async def post(body: bytes, count: int) -> None:
            while result.error is None:
                result.requests += 1
                async with session.post(post_url, data=body, headers=NDJSON) as response:
                    answer = await response.read()
                    if response.status == 202:
                        decoded = orjson.loads(answer)
                        result.accepted += int(decoded["accepted"])
                        result.rejected += len(decoded["rejected"])
                        return
                    if response.status in (429, 503) and time.perf_counter() < give_up:
                        result.retries += 1
                        wait = response.headers.get("Retry-After", "1")
                        await asyncio.sleep(
                            min(MAX_RETRY_WAIT, float(wait) if wait.isdigit() else 1.0)
                        )
                        continue
                    result.failed += count
                    result.error = (
                        f"HTTP {response.status}: {answer[:300].decode(errors='replace')}"
                    )
                    return

        async def sender() -> None:
            while not queue.empty() and result.error is None:
                number, body, count = queue.get_nowait()
                if job.rate:  # batch n leaves at start + n·batch/rate, whatever came before
                    await asyncio.sleep(
                        max(0.0, start + number * job.batch / job.rate - time.perf_counter())
                    )
                try:
                    await post(body, count)
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                    result.failed += count
                    result.error = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(sender() for _ in range(job.connections)))
        result.post_seconds = time.perf_counter() - start
        await _until_queryable(session, job, result, start)
    return result


async def _until_queryable(
    session: aiohttp.ClientSession, job: IngestJob, result: IngestResult, start: float
) -> None:
    """Poll the row count until every accepted event is queryable, or the drain timeout."""
    import aiohttp

    target = result.baseline_rows + result.accepted
    deadline = time.perf_counter() + job.drain_timeout
    while True:
        try:
            result.rows = await _rows(session, job.url, job.dataset)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.error = result.error or f"polling /v1/datasets: {type(exc).__name__}: {exc}"
        result.total_seconds = time.perf_counter() - start
        if result.rows >= target:
            if result.rows > target:  # every accepted event once: more is a duplicate somewhere
                result.error = result.error or (
                    f"{result.rows - target:,} rows more than the {result.accepted:,} accepted "
                    "events: stored twice, or written by something else meanwhile"
                )
            result.complete = result.error is None
            return
        if time.perf_counter() > deadline:
            missing = target - result.rows
            result.error = result.error or (
                f"{missing:,} of {result.accepted:,} accepted events not queryable "
                f"{job.drain_timeout:g} s after the last post"
            )
            return
        await asyncio.sleep(POLL_INTERVAL)


def run_reads(job: ReadJob) -> ReadResult:
    ids = Path(job.ids_path).read_text().split() if job.ids_path else []
    if any("{id}" in p for p in job.paths) and not ids:
        raise ValueError("a path needs {id} but no ids were given")
    if job.id_pool is not None:
        ids = ids[: job.id_pool]
    return _run(_reads(job, ids))


async def _reads(job: ReadJob, ids: list[str]) -> ReadResult:
    rng = random.Random(job.seed)
    result = ReadResult()
    seen: set[str] = set()
    clients = [KeepAliveClient(job.url, REQUEST_TIMEOUT) for _ in range(job.connections)]

    def next_path() -> str:
        path = rng.choice(job.paths)
        return path.replace("{id}", rng.choice(ids)) if "{id}" in path else path

    async def fetch(client: KeepAliveClient, path: str) -> tuple[bool, str]:
        try:
            status = await client.get(path)
        except (OSError, ConnectionLost, TimeoutError) as exc:
            client.close()
            await asyncio.sleep(0.01)  # a server gone away must not make this spin
            return False, f"{type(exc).__name__}: {exc}"
        return status == 200, f"HTTP {status}"

    async def run(client: KeepAliveClient, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            path = next_path()
            started = time.perf_counter()
            ok, problem = await fetch(client, path)
            if not record:
                continue
            seen.add(path)
            if ok:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
                result.first_error = result.first_error or problem

    async def phase(seconds: float, record: bool) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(run(client, start + seconds, record) for client in clients))
        return time.perf_counter() - start  # requests in flight at the end are counted

    try:
        if job.id_pool is not None:  # a hot set: ask for each id once, so a cache can hold all
            primer = iter(ids)

            async def prime(client: KeepAliveClient) -> None:
                for event_id in primer:
                    for path in (p for p in job.paths if "{id}" in p):
                        await fetch(client, path.replace("{id}", event_id))

            await asyncio.gather(*(prime(client) for client in clients))
        if job.warmup > 0:
            await phase(job.warmup, record=False)
        result.seconds = await phase(job.seconds, record=True)
    finally:
        for client in clients:
            client.close()
    result.requests = len(result.latencies) + result.errors
    result.distinct = len(seen)
    result.p50 = percentile(result.latencies, 0.50)
    result.p99 = percentile(result.latencies, 0.99)
    return result


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:  # a cheaper event loop leaves more of the machine's cores to the server
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


JOBS: dict[str, tuple[type[Any], Callable[[Any], Any]]] = {
    "ingest": (IngestJob, run_ingest),
    "reads": (ReadJob, run_reads),
}


def main() -> int:
    request = orjson.loads(sys.stdin.buffer.read())
    kind, parameters = request["job"], request["parameters"]
    job_type, runner = JOBS[kind]
    result = runner(job_type(**parameters))
    answer = asdict(result)
    answer.pop("latencies", None)
    sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
