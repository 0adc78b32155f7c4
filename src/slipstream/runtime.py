"""What a running process holds: settings, datasets, broker, store, metrics and its background tasks.

`slipstream up` runs the API and the worker on one Runtime; `api` and `worker` run one half each.
The runtime makes the broker and the store (every role), hands the worker its `Consumer` and
`Writer` and the API its roles, and itself uses their lifecycles, the broker's `Backlog` (as its
capabilities allow) and the store's `Retention`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from slipstream.admission import BOUND_RETRY_AFTER, DrainRate, Refusal
from slipstream.api.cache import ReadCache
from slipstream.brokers import Backlog, Broker, create_broker
from slipstream.config import Settings
from slipstream.datasets import Catalog, load_catalog
from slipstream.errors import BackendUnavailable, reason_of
from slipstream.events import EventCodec
from slipstream.metrics import Metrics
from slipstream.status_history import StatusHistory
from slipstream.stores import Retention, Store, create_store
from slipstream.worker import Worker

log = logging.getLogger("slipstream")
BACKLOG_REFRESH = 0.5
HEALTH_INTERVAL = 5.0
PING_TIMEOUT = 2.0


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        with_api: bool = True,
        with_worker: bool = True,
        broker: Broker | None = None,
        store: Store | None = None,
        metrics: Metrics | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog if catalog is not None else load_catalog(settings.datasets)
        self.codecs = {d.name: EventCodec(d) for d in self.catalog}
        self.broker = broker if broker is not None else create_broker(settings)
        self.store = store if store is not None else create_store(settings)
        self.metrics = metrics if metrics is not None else Metrics()
        self.with_api = with_api
        self.worker = (
            Worker(self.broker, self.store, self.catalog, settings, self.metrics)
            if with_worker
            else None
        )
        self.backlog: dict[str, int] = dict.fromkeys(self.catalog.names, 0)
        self.drain = {name: DrainRate(settings.admission_seconds) for name in self.catalog.names}
        # The last ping of each backend: "ok" or why not (the worker's /readyz reads it).
        self.backends: dict[str, str] = {"broker": "not checked yet", "store": "not checked yet"}
        self.read_cache = ReadCache(settings.read_cache_size)
        self.status_history = StatusHistory(self.metrics)
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.broker.open(self.catalog.names)
        await self.store.open(list(self.catalog))
        for name in self.catalog.names:
            self.metrics.start_dataset(name)
        await self._refresh_backlog()
        self._spawn(self._backlog_loop(), "backlog")
        self._spawn(self._health_loop(), "health")
        self._spawn(self.status_history.run(), "status-history")
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run(), name="worker")
            self._spawn(self._retention_loop(), "retention")

    async def stop(self) -> None:
        if self.worker is not None and self._worker_task is not None:
            self.worker.stop()
            try:
                # A cooperative stop finishes the batch in hand; past the lease it is released.
                await asyncio.wait_for(self._worker_task, self.settings.lease_seconds)
            except TimeoutError:
                log.warning("worker did not finish within the lease; released its batch")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.close()
        await self.store.close()

    def refusal(self, dataset: str) -> Refusal | None:
        """Why ingest into `dataset` should wait (admission.py), or None."""
        backlog = self.backlog.get(dataset, 0)
        if backlog >= self.settings.backlog_limit:
            return Refusal(
                f"dataset {dataset!r} has {backlog} events waiting, over the bound of "
                f"{self.settings.backlog_limit} (SLIPSTREAM_BACKLOG_LIMIT)",
                BOUND_RETRY_AFTER,
            )
        return self.drain[dataset].refusal(dataset, backlog)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _refresh_backlog(self) -> None:
        broker: Backlog = self.broker
        if not broker.capabilities.counts_backlog:
            return  # no figure is better than a made-up zero
        for name in self.catalog.names:
            try:
                size = await broker.backlog(name)
            except BackendUnavailable:
                continue  # keep the last known size; readiness reports the outage
            self.backlog[name] = size
            self.drain[name].observe(size, time.monotonic())
            self.metrics.backlog.labels(name).set(size)

    async def _backlog_loop(self) -> None:
        while True:
            await asyncio.sleep(BACKLOG_REFRESH)
            await self._refresh_backlog()

    async def check_backends(self) -> dict[str, str]:
        """Ping broker and store together: each "ok" or "unavailable: <why>"."""
        broker, store = await asyncio.gather(
            backend_state(self.broker.ping), backend_state(self.store.ping)
        )
        return {"broker": broker, "store": store}

    async def _health_loop(self) -> None:
        # Alertmanager inhibits symptom alerts (latency, freshness) while a backend is down,
        # so the page names the cause; this gauge is what it keys on.
        while True:
            self.backends.update(await self.check_backends())
            for component, state in self.backends.items():
                self.metrics.backend_up.labels(component).set(1 if state == "ok" else 0)
            await asyncio.sleep(HEALTH_INTERVAL)

    async def _retention_loop(self) -> None:
        store: Retention = self.store
        while True:
            for dataset in self.catalog:
                if dataset.retention is None:
                    continue
                try:
                    removed = await store.expire(dataset, datetime.now(UTC) - dataset.retention)
                except BackendUnavailable as exc:
                    log.warning("retention sweep of %s failed: %s", dataset.name, exc)
                    continue
                if removed:
                    self.read_cache.clear()
                    log.info("retention removed %d rows of %s", removed, dataset.name)
            await asyncio.sleep(self.settings.retention_interval)


async def backend_state(ping: Callable[[], Awaitable[None]]) -> str:
    """What a ping says: "ok" in time, else "unavailable: <why>" (never an empty why)."""
    try:
        await asyncio.wait_for(ping(), PING_TIMEOUT)
    except Exception as exc:  # any failure of the ping means down; say why
        return f"unavailable: {reason_of(exc)}"
    return "ok"


def readiness(backends: dict[str, str]) -> tuple[bool, dict[str, str]]:
    """The /readyz answer: ready, or not ready with a reason naming each backend that is down
    and why (e.g. "store unavailable: disk full: …")."""
    down = [f"{name} {state}" for name, state in backends.items() if state != "ok"]
    if not down:
        return True, {"status": "ready", **backends}
    return False, {"status": "not ready", "reason": "; ".join(down), **backends}
