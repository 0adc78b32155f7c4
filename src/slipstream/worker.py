"""The worker: pull a batch, validate it, write it once, ack only after the commit.

It knows a broker only as a `Consumer` and a store only as a `Writer` (each of them `Reachable`,
to wait for it after a failure), and acts on error classes alone:
- invalid events → quarantine with the reason (in the same commit as the valid ones);
- TerminalStoreError → split the batch until each culprit stands alone, then dead-letter it; the
  other messages are written and acked whatever happens to it (a culprit whose dead letter cannot
  be sent now is nacked alone, and the broker buries it after `max_deliveries`);
- BackendUnavailable (TransientStoreError included) → nack with backoff, then stop pulling until
  the store answers a ping again, so an outage costs each message one delivery, not all of them;
- a broker failing an ack → pause and go on: the messages return after their lease.
A message may be a bundle of events (bundles.py): its events are written like single messages
and a bundle the store refuses is published again as single messages (then acked), so that the
culprit is found and dead-lettered alone.
While it backs off, the worker pings the backend that failed every PING_INTERVAL and resumes as
soon as one that was down answers again; one that answered throughout gets the whole backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from slipstream import otel
from slipstream.brokers import Consumer, Delivery, Publisher
from slipstream.bundles import count_of, events_of, unbundled
from slipstream.config import Settings
from slipstream.datasets import Catalog, Dataset
from slipstream.errors import BackendUnavailable, TerminalStoreError
from slipstream.events import MAX_PLACE, PLACE_ATTRIBUTE, EventCodec, Rejected
from slipstream.metrics import Metrics, observe_times
from slipstream.origins import Origins, of_message
from slipstream.registry import Reachable
from slipstream.stores import Writer

log = logging.getLogger("slipstream.worker")
MAX_BACKOFF = 30.0
QUARANTINE_LINES = 10  # quarantined events logged one by one per batch; the rest are counted
PING_INTERVAL = 0.2  # seconds between pings of a backend the worker waits for
PING_TIMEOUT = 5.0  # a ping not answered by then counts as down


class StoreDown(Exception):
    """The store failed a write for a reason that may pass; the batch was nacked."""


class Source(Consumer, Publisher, Reachable, Protocol):
    """The broker, as the worker uses it (it publishes only to split a bundle)."""


class Sink(Writer, Reachable, Protocol):
    """The store, as the worker uses it."""


class Worker:
    def __init__(
        self,
        broker: Source,
        store: Sink,
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
        self._buried: dict[str, int] = {}  # dataset → broker.buried() when last read
        # dataset → events per message of the last pull: bundles make a message many events,
        # and a batch is counted in events (SLIPSTREAM_BATCH_SIZE).
        self._per_message: dict[str, float] = {}

    def stop(self) -> None:
        """Finish the batches in hand, then return from `run` (cancelling `run` releases them)."""
        self._stopping.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for dataset in self.catalog:
                # Loops of one dataset share nothing but the broker, whose leases keep their
                # batches apart, and the store, whose writes are idempotent: with two, one batch
                # is decoded on this loop while the store writes the other (docs/performance.md).
                for n in range(self.settings.batches_in_flight):
                    group.create_task(self._consume(dataset), name=f"worker-{dataset.name}-{n}")

    async def _consume(self, dataset: Dataset) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                deliveries = await self.broker.pull(
                    dataset.name, self._pull_size(dataset.name), self.settings.batch_wait
                )
            except BackendUnavailable as exc:
                failures += 1
                log.warning("broker unavailable for %s: %s", dataset.name, exc)
                await self._recover(self.broker.ping, failures)
                continue
            finally:
                self._count_buried(dataset.name)
            if not deliveries:
                continue
            try:
                await self.process(dataset, deliveries)
                failures = 0
            except StoreDown:
                failures += 1
                await self._recover(self.store.ping, failures)
            except BackendUnavailable as exc:
                # The broker failed an ack, nack or dead-letter. Nothing is lost: unacked
                # messages come back after their lease, and the store ignores what it holds.
                failures += 1
                log.warning("broker unavailable for %s: %s", dataset.name, exc)
                await self._recover(self.broker.ping, failures)

    def _pull_size(self, name: str) -> int:
        """Messages to ask for: about a batch of events at the last pull's events per message."""
        return max(1, int(self.settings.batch_size / self._per_message.get(name, 1.0)))

    def _count_buried(self, name: str) -> None:
        """Count what the broker's pulls dead-lettered for max deliveries since the last look."""
        total = self.broker.buried(name)
        if (new := total - self._buried.get(name, 0)) > 0:
            self.metrics.events_dead_lettered.labels(name, "max_deliveries").inc(new)
        self._buried[name] = total

    async def process(self, dataset: Dataset, deliveries: Sequence[Delivery]) -> None:
        """Write one batch and ack it; raise StoreDown after nacking it when the store fails."""
        self.metrics.inflight.inc()
        origins = Origins.of(deliveries)
        fields = {"messaging.destination.name": dataset.name} if otel.enabled() else None
        try:
            events = sum(count_of(d.attributes) for d in deliveries)
            self.metrics.batch_size.labels(dataset.name).observe(events)
            self._per_message[dataset.name] = events / len(deliveries)
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
        """Write one batch and ack it; split it if the store refuses it for good; nack it and
        raise StoreDown if the store cannot take it now."""
        refused = await self._attempt(dataset, deliveries, origins)
        if refused is not None:
            await self._isolate(dataset, deliveries, refused)

    async def _attempt(
        self, dataset: Dataset, deliveries: Sequence[Delivery], origins: Origins | None = None
    ) -> TerminalStoreError | None:
        """Write and ack `deliveries`, or return the store's refusal (nothing acked)."""
        codec = self.codecs[dataset.name]
        messages = []
        owners: list[int] = []  # the delivery of each event, for the log lines of rejects
        sizes: list[int] = []  # events each delivery carries
        for index, delivery in enumerate(deliveries):
            received_at = _received_at(delivery.published_at)
            carried = events_of(delivery)
            messages += [(key, data, received_at) for key, data in carried]
            owners += [index] * len(carried)
            sizes.append(len(carried))
        rows, rejected = codec.decode(
            messages, [(n, d.data) for n, d in zip(sizes, deliveries, strict=True)]
        )
        rejected = [(i, placed(r, deliveries[owners[i]])) for i, r in rejected]
        started = time.perf_counter()
        try:
            result = await self.store.write(dataset, rows, [r for _, r in rejected])
        except TerminalStoreError as exc:
            self.metrics.store_errors.labels(dataset.name, "terminal").inc()
            return exc
        except BackendUnavailable as exc:
            self.metrics.store_errors.labels(dataset.name, "transient").inc()
            delay = _backoff(max(d.delivery_count for d in deliveries))
            log.warning(
                "store write failed for %s (%s); retrying in %.1fs", dataset.name, exc, delay
            )
            await self._give_back(dataset, deliveries, delay)
            raise StoreDown(str(exc)) from exc
        committed = time.time()
        self.metrics.write_latency.labels(dataset.name).observe(time.perf_counter() - started)
        await self.broker.ack(dataset.name, deliveries)
        culprits = [(deliveries[owners[index]], item) for index, item in rejected]
        self._record(dataset, deliveries, origins, result.inserted, len(rows), culprits)
        freshness = self.metrics.freshness.labels(dataset.name)
        for delivery, size in zip(deliveries, sizes, strict=True):
            # The freshness objective counts events: a bundle's share its age.
            observe_times(freshness, max(0.0, committed - delivery.published_at), size)
        return None

    def _record(
        self,
        dataset: Dataset,
        deliveries: Sequence[Delivery],
        origins: Origins | None,
        inserted: int,
        valid: int,
        rejected: Sequence[tuple[Delivery, Rejected]],
    ) -> None:
        """Metrics and log lines of a batch written and acked."""
        name = dataset.name
        self.metrics.events_written.labels(name).inc(inserted)
        self.metrics.events_duplicate.labels(name).inc(valid - inserted)
        for _, item in rejected:
            reason = "invalid_json" if item.reason.startswith("not valid JSON") else "schema"
            self.metrics.events_quarantined.labels(name, reason).inc()
        origins = origins or Origins.of(deliveries)
        log.info(
            "batch written",
            extra={
                "dataset": name,
                "batch_size": valid + len(rejected),
                "written": inserted,
                "duplicates": valid - inserted,
                "quarantined": len(rejected),
                "request_ids": origins.request_ids,
                "trace_ids": origins.trace_ids(),
            },
        )
        for delivery, item in rejected[:QUARANTINE_LINES]:
            fields = of_message(delivery, dataset=name, reason=item.reason[:300])
            fields["event_id"] = item.key
            log.info("event quarantined", extra=fields)

    async def _isolate(
        self, dataset: Dataset, deliveries: Sequence[Delivery], error: TerminalStoreError
    ) -> None:
        """Halve a batch the store refused until each message at fault is alone, and dead-letter
        it. Each part's fate is its own: a failed ack or dead letter leaves the others going; a
        store gone down gives back all that is left, and raises StoreDown."""
        pending: list[tuple[Sequence[Delivery], TerminalStoreError | None]] = [(deliveries, error)]
        broker_error: BackendUnavailable | None = None
        while pending:
            part, refused = pending.pop()
            try:
                refused = refused or await self._attempt(dataset, part)
            except StoreDown:
                rest = [d for waiting, _ in pending for d in waiting]
                await self._give_back(dataset, rest, _backoff(max(d.delivery_count for d in part)))
                raise
            except BackendUnavailable as exc:  # the ack: the part comes back after its lease
                broker_error = broker_error or exc
                continue
            if refused is None:
                continue
            if len(part) == 1 and len(events_of(part[0])) > 1:
                try:
                    await self._split(dataset, part[0])
                except BackendUnavailable as exc:  # the bundle comes back after its lease
                    broker_error = broker_error or exc
                continue
            if len(part) == 1:
                await self._dead_letter(dataset, part[0], refused)
                continue
            middle = len(part) // 2
            pending += [(part[middle:], None), (part[:middle], None)]
        if broker_error is not None:
            raise broker_error

    async def _split(self, dataset: Dataset, bundle: Delivery) -> None:
        """Publish a refused bundle's events again as single messages, then ack the bundle; the
        singles come back to this worker, and the one at fault is dead-lettered alone. Until the
        ack lands, a failure leaves the bundle leased (it returns after its lease): events
        published twice are stored once. Raises BackendUnavailable when the broker fails."""
        singles = unbundled(bundle, self.codecs[dataset.name].id_in)
        log.warning(
            "store refused a bundle of %d events of %s; publishing them one by one to find the"
            " culprit",
            len(singles),
            dataset.name,
            extra=of_message(bundle, dataset=dataset.name),
        )
        await self.broker.publish(dataset.name, singles)
        await self.broker.ack(dataset.name, [bundle])

    async def _dead_letter(
        self, dataset: Dataset, culprit: Delivery, error: TerminalStoreError
    ) -> None:
        """Dead-letter one message the store refuses; if the broker cannot take the letter now,
        nack it alone with backoff (after `max_deliveries` the broker buries it on its own)."""
        name = dataset.name
        log.error(
            "dead-lettering message %s of %s: %s",
            culprit.key,
            name,
            error,
            extra=of_message(culprit, dataset=name),
        )
        try:
            await self.broker.dead_letter(name, [culprit], f"store refused it: {error}")
        except BackendUnavailable as exc:
            delay = _backoff(culprit.delivery_count)
            log.warning(
                "could not dead-letter message %s of %s (%s); it comes back in %.1fs",
                culprit.key,
                name,
                exc,
                delay,
                extra=of_message(culprit, dataset=name),
            )
            await self._give_back(dataset, [culprit], delay)
            return
        self.metrics.events_dead_lettered.labels(name, "terminal_error").inc()

    async def _give_back(
        self, dataset: Dataset, deliveries: Sequence[Delivery], delay: float
    ) -> None:
        """Nack, visible again after `delay`; a broker that cannot take the nack lets the lease
        do it."""
        if not deliveries:
            return
        try:
            await self.broker.nack(dataset.name, deliveries, delay)
        except BackendUnavailable as exc:
            log.warning(
                "could not nack %d messages of %s (%s); they return after the lease",
                len(deliveries),
                dataset.name,
                exc,
            )

    async def _recover(self, ping: Callable[[], Awaitable[None]], failures: int) -> None:
        """Wait after `failures` failures in a row: the backoff, cut short when the backend
        (pinged every PING_INTERVAL meanwhile) was down and answers again. One that answers from
        the first ping, or answers only after the backoff, is waited for no longer than that."""
        deadline = time.monotonic() + _backoff(failures)
        was_down = False
        while not self._stopping.is_set():
            up = await self._answers(ping)
            remaining = deadline - time.monotonic()
            if up and (was_down or remaining <= 0):
                return
            was_down = was_down or not up
            await self._pause(PING_INTERVAL if not up else min(PING_INTERVAL, remaining))

    async def _answers(self, ping: Callable[[], Awaitable[None]]) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await ping()
        except (BackendUnavailable, TimeoutError):
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def placed(rejected: Rejected, delivery: Delivery) -> Rejected:
    """`rejected` with its place in an imported file (PLACE_ATTRIBUTE) first in its reason."""
    place = delivery.attributes.get(PLACE_ATTRIBUTE)
    if not place:
        return rejected
    reason = f"{place[:MAX_PLACE]}: {rejected.reason}"
    return Rejected(rejected.key, reason, rejected.raw, rejected.received_at)


def _received_at(published_at: float) -> datetime:
    """When the broker took the message in; now, should a broker hand a time out of range."""
    try:
        return datetime.fromtimestamp(published_at, UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.now(UTC)


def _backoff(attempt: int) -> float:
    return float(min(MAX_BACKOFF, 0.25 * 2 ** max(0, attempt - 1)))
