"""The worker: pull a batch, validate it, write it once, ack only after the commit.

It knows brokers and stores only through their Protocols and acts on error classes alone:
- invalid events → quarantine with the reason (in the same commit as the valid ones);
- TerminalStoreError → split the batch until the culprit stands alone, then dead-letter it;
- BackendUnavailable (TransientStoreError included) → nack with backoff, then stop pulling until
  the store answers a ping again, so an outage costs each message one delivery, not all of them;
- a broker failing an ack → pause and go on: the messages return after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slipstream import otel
from slipstream.brokers import Broker, Delivery
from slipstream.config import Settings
from slipstream.datasets import Catalog, Dataset
from slipstream.errors import BackendUnavailable, TerminalStoreError
from slipstream.events import EventCodec
from slipstream.metrics import Metrics
from slipstream.stores import Store

log = logging.getLogger("slipstream.worker")
MAX_BACKOFF = 30.0
LOGGED_IDS = 5  # request and trace ids named in a batch line; a batch may carry thousands
QUARANTINE_LINES = 10  # quarantined events logged one by one per batch; the rest are counted


class StoreDown(Exception):
    """The store failed a write for a reason that may pass; the batch was nacked."""


class Worker:
    def __init__(
        self,
        broker: Broker,
        store: Store,
        catalog: Catalog,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.broker = broker
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.metrics = metrics
        self.codecs = {d.name: EventCodec(d) for d in catalog}
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batches in hand, then return from `run` (cancelling `run` releases them)."""
        self._stopping.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for dataset in self.catalog:
                group.create_task(self._consume(dataset), name=f"worker-{dataset.name}")

    async def _consume(self, dataset: Dataset) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                deliveries = await self.broker.pull(
                    dataset.name, self.settings.batch_size, self.settings.batch_wait
                )
            except BackendUnavailable as exc:
                failures += 1
                log.warning("broker unavailable for %s: %s", dataset.name, exc)
                await self._pause(failures)
                continue
            if not deliveries:
                continue
            try:
                await self.process(dataset, deliveries)
                failures = 0
            except StoreDown:
                failures += 1
                await self._wait_for_store(failures)
            except BackendUnavailable as exc:
                # The broker failed an ack, nack or dead-letter. Nothing is lost: unacked
                # messages come back after their lease, and the store ignores what it holds.
                failures += 1
                log.warning("broker unavailable for %s: %s", dataset.name, exc)
                await self._pause(failures)

    async def process(self, dataset: Dataset, deliveries: Sequence[Delivery]) -> None:
        """Write one batch and ack it; raise StoreDown after nacking it when the store fails."""
        self.metrics.inflight.inc()
        origins = Origins.of(deliveries)
        fields = {"messaging.destination.name": dataset.name} if otel.enabled() else None
        try:
            self.metrics.batch_size.labels(dataset.name).observe(len(deliveries))
            # Links, not a parent: a batch carries messages from many producers' traces.
            with otel.span(
                "process batch", kind="consumer", links=origins.traceparents, attributes=fields
            ):
                await self._write(dataset, deliveries, origins)
        except asyncio.CancelledError:
            # Forced stop mid-batch: hand the messages back now rather than after the lease.
            await asyncio.shield(self._release(dataset, deliveries))
            raise
        finally:
            self.metrics.inflight.dec()

    async def _release(self, dataset: Dataset, deliveries: Sequence[Delivery]) -> None:
        try:
            await self.broker.nack(dataset.name, deliveries, 0)
        except BackendUnavailable:
            log.warning(
                "could not release %d messages; they return after the lease", len(deliveries)
            )

    async def _write(
        self, dataset: Dataset, deliveries: Sequence[Delivery], origins: Origins | None = None
    ) -> None:
        codec = self.codecs[dataset.name]
        rows, rejected = codec.decode(
            [(d.key, d.data, datetime.fromtimestamp(d.published_at, UTC)) for d in deliveries]
        )
        started = time.perf_counter()
        try:
            result = await self.store.write(dataset, rows, [r for _, r in rejected])
        except TerminalStoreError as exc:
            self.metrics.store_errors.labels(dataset.name, "terminal").inc()
            await self._isolate(dataset, deliveries, exc)
            return
        except BackendUnavailable as exc:
            self.metrics.store_errors.labels(dataset.name, "transient").inc()
            delay = _backoff(max(d.delivery_count for d in deliveries))
            log.warning(
                "store write failed for %s (%s); retrying in %.1fs", dataset.name, exc, delay
            )
            await self.broker.nack(dataset.name, deliveries, delay)
            raise StoreDown(str(exc)) from exc
        committed = time.time()
        self.metrics.write_latency.labels(dataset.name).observe(time.perf_counter() - started)
        await self.broker.ack(dataset.name, deliveries)
        name = dataset.name
        self.metrics.events_written.labels(name).inc(result.inserted)
        self.metrics.events_duplicate.labels(name).inc(len(rows) - result.inserted)
        for _, item in rejected:
            reason = "invalid_json" if item.reason.startswith("not valid JSON") else "schema"
            self.metrics.events_quarantined.labels(name, reason).inc()
        origins = origins or Origins.of(deliveries)
        log.info(
            "batch written",
            extra={
                "dataset": name,
                "batch_size": len(deliveries),
                "written": result.inserted,
                "duplicates": len(rows) - result.inserted,
                "quarantined": len(rejected),
                "request_ids": origins.request_ids,
                "trace_ids": origins.trace_ids(),
            },
        )
        for index, item in rejected[:QUARANTINE_LINES]:
            log.info(
                "event quarantined",
                extra=_of_message(deliveries[index], dataset=name, reason=item.reason[:300]),
            )
        freshness = self.metrics.freshness.labels(name)
        for delivery in deliveries:
            freshness.observe(max(0.0, committed - delivery.published_at))

    async def _isolate(
        self, dataset: Dataset, deliveries: Sequence[Delivery], error: TerminalStoreError
    ) -> None:
        """Halve a batch the store refused until the message at fault is alone, then dead-letter it."""
        if len(deliveries) == 1:
            log.error(
                "dead-lettering message %s of %s: %s",
                deliveries[0].key,
                dataset.name,
                error,
                extra=_of_message(deliveries[0], dataset=dataset.name),
            )
            await self.broker.dead_letter(dataset.name, deliveries, f"store refused it: {error}")
            self.metrics.events_dead_lettered.labels(dataset.name, "terminal_error").inc()
            return
        middle = len(deliveries) // 2
        for half in (deliveries[:middle], deliveries[middle:]):
            await self._write(dataset, half)

    async def _wait_for_store(self, failures: int) -> None:
        while not self._stopping.is_set():
            await self._pause(failures)
            try:
                await self.store.ping()
                return
            except BackendUnavailable:
                failures += 1

    async def _pause(self, failures: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), _backoff(failures))


@dataclass(frozen=True, slots=True)
class Origins:
    """Where a batch came from: the first few distinct request ids, and producers' traceparents."""

    request_ids: list[str]
    traceparents: list[str]

    @classmethod
    def of(cls, deliveries: Sequence[Delivery]) -> Origins:
        request_ids: dict[str, None] = {}  # insertion-ordered set
        traceparents: dict[str, None] = {}
        for delivery in deliveries:
            attributes = delivery.attributes
            if (rid := attributes.get("request_id")) and len(request_ids) < LOGGED_IDS:
                request_ids[rid] = None
            if (parent := attributes.get("traceparent")) and len(traceparents) < otel.MAX_LINKS:
                traceparents[parent] = None
        return cls(list(request_ids), list(traceparents))

    def trace_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for parent in self.traceparents:
            if (parsed := otel.parse_traceparent(parent)) is not None:
                ids[parsed[0]] = None
                if len(ids) == LOGGED_IDS:
                    break
        return list(ids)


def _of_message(delivery: Delivery, **fields: str) -> dict[str, str]:
    """Log fields naming one message and the request that sent it."""
    fields["event_id"] = delivery.key
    if request_id := delivery.attributes.get("request_id"):
        fields["request_id"] = request_id
    if (parsed := otel.parse_traceparent(delivery.attributes.get("traceparent"))) is not None:
        fields["trace_id"] = parsed[0]
    return fields


def _backoff(attempt: int) -> float:
    return float(min(MAX_BACKOFF, 0.25 * 2 ** max(0, attempt - 1)))
