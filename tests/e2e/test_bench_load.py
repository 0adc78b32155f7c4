"""The bench's ingest load against a real server: it counts each accepted event once, and says
so when the store holds more rows than were accepted (a duplicate, or another writer)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from slipstream.bench.load import IngestJob, IngestResult, _until_queryable, run_ingest
from tests.e2e.harness import ServerProcess


def test_an_ingest_is_complete_when_every_accepted_event_is_stored_once(
    server: ServerProcess,
) -> None:
    result = run_ingest(IngestJob(server.url, 2000, 500, 2, drain_timeout=30.0, seed=7))
    assert result.complete, result.error
    assert (result.accepted, result.baseline_rows, result.rows) == (2000, 0, 2000)


def test_more_rows_than_accepted_is_an_error(server: ServerProcess) -> None:
    """1,500 rows stored where the bench accepted 1,000 over a baseline of 0: not complete."""
    stored = run_ingest(IngestJob(server.url, 1500, 500, 2, drain_timeout=30.0, seed=8))
    assert stored.complete, stored.error
    job = IngestJob(server.url, 1000, 500, 2, drain_timeout=5.0)
    result = IngestResult(accepted=1000, baseline_rows=0)

    async def drain() -> None:
        async with aiohttp.ClientSession() as session:
            await _until_queryable(session, job, result, time.perf_counter())

    asyncio.run(drain())
    assert not result.complete
    assert result.error == (
        "500 rows more than the 1,000 accepted events: stored twice, or written by something "
        "else meanwhile"
    )
