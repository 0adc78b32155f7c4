"""Google Cloud Pub/Sub, `pubsub://PROJECT[?prefix=NAME]`: a topic and a subscription per dataset.

Calls go through the synchronous clients on a thread pool of the broker's own: publishing through
`PublisherClient` (batched, every future awaited), consuming through unary `pull` (not the
streaming subscriber, whose leases the library would extend on its own). `PUBSUB_EMULATOR_HOST`
points both clients at the emulator. docs/backends/pubsub.md tells the whole story; in short:

- a lease is the subscription's ack deadline, at least 10 s (Pub/Sub's minimum);
- `delivery_count` is Pub/Sub's `delivery_attempt` (counted in-process where the subscription has
  no dead letter policy); a message seen for the `max_deliveries + 1`-th time is dead-lettered by
  the broker, and Pub/Sub's policy (5 attempts at least) moves it on its own as well;
- dead letters live in the subscription on `<topic>-dlq`; listing them pulls and at once releases
  them, so it is approximate (a snapshot of what one pull round returns);
- `backlog` is not counted (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import google.cloud.pubsub_v1 as pubsub_v1  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from slipstream.brokers import BrokerSettings, DeadLetter, Delivery, Outgoing
from slipstream.brokers.pubsub_messages import (
    Message,
    attributes_of,
    check_size,
    dead_message,
    delivery_of,
    letter_of,
    letter_order,
    replayable,
)
from slipstream.brokers.pubsub_resources import (
    CAPABILITIES,
    Limits,
    Names,
    Options,
    Target,
    ensure,
    limits,
    names_for,
    parse_url,
)
from slipstream.errors import BackendUnavailable, ConfigError
from slipstream.options import BackendOptions

if TYPE_CHECKING:
    from google.pubsub_v1.types import ReceivedMessage

T = TypeVar("T")
log = logging.getLogger("slipstream.brokers.pubsub")

BATCH = pubsub_v1.types.BatchSettings(max_messages=1000, max_bytes=9_000_000, max_latency=0.01)
PUBLISH_TIMEOUT = 30.0
PING_TIMEOUT = 5.0
PULL_MAX = 1000  # most messages one pull asks for (the emulator hands out 100 at most)
MIN_PULL_TIMEOUT = 1.0  # a shorter RPC deadline may expire before Pub/Sub answers at all
POLL_FIRST, POLL_MAX = 0.01, 0.1
PEEK_TIMEOUT, PEEK_MAX = 1.0, 10_000  # dead letter listing: one pull round, this many at most
IDS_PER_CALL = 1000  # ack ids per acknowledge / modify_ack_deadline request
TRACKED = 100_000  # message ids whose deliveries are counted here when Pub/Sub does not count
WORN = "delivered {} times without an ack (lease expired or nacked each time)"


class PubSubBroker:
    capabilities = CAPABILITIES
    url_options: ClassVar[type[BackendOptions]] = Options

    def __init__(self, target: Target, settings: BrokerSettings) -> None:
        self.target = target
        self._limits: Limits = limits(settings)
        self._create = settings.create_resources
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="slipstream-pubsub")
        self._publisher: Any = None
        self._subscriber: Any = None
        self._names: dict[str, Names] = {}
        self._dead_locks: dict[str, asyncio.Lock] = {}
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._buried: Counter[str] = Counter()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, settings: BrokerSettings) -> PubSubBroker:
        return cls(parse_url(url), settings)

    # --- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (gexc.GoogleAPIError, auth_exc.GoogleAuthError) as exc:
            raise BackendUnavailable(f"pubsub {self.target.project}: {exc}") from exc

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        with self._errors():
            return fn(*args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise BackendUnavailable(f"pubsub {self.target.project}: already closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, fn, *args)

    def _topic(self, dataset: str) -> Names:
        try:
            return self._names[dataset]
        except KeyError:
            raise ValueError(f"unknown dataset {dataset!r}: not opened by this broker") from None

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self, datasets: Sequence[str]) -> None:
        if self._publisher is None:
            self._publisher, self._subscriber = await self._run(self._connect)
        for dataset in datasets:
            if dataset in self._names:
                continue
            names = names_for(self.target, dataset)
            await self._run(
                ensure, self._publisher, self._subscriber, names, self._limits, self._create
            )
            self._names[dataset] = names
            self._dead_locks[dataset] = asyncio.Lock()

    @staticmethod
    def _connect() -> tuple[Any, Any]:
        try:
            return pubsub_v1.PublisherClient(batch_settings=BATCH), pubsub_v1.SubscriberClient()
        except auth_exc.DefaultCredentialsError as exc:
            raise ConfigError(
                "pubsub:// needs Google credentials (GOOGLE_APPLICATION_CREDENTIALS, or run on"
                " GCP), or PUBSUB_EMULATOR_HOST=HOST:PORT for the emulator"
            ) from exc

    async def close(self) -> None:
        if self._closed:
            return
        if self._publisher is not None:
            with contextlib.suppress(BackendUnavailable, RuntimeError, ValueError):
                await self._run(self._shutdown)
        self._closed = True
        self._executor.shutdown(wait=False)

    def _shutdown(self) -> None:
        try:
            self._publisher.stop()  # publishes what is still batched
        finally:
            self._publisher.transport.close()
            self._subscriber.close()

    async def ping(self) -> None:
        if self._publisher is None:
            raise BackendUnavailable(f"pubsub {self.target.project}: not open")
        names = next(iter(self._names.values()), None)
        if names is not None:
            await self._run(
                lambda: self._publisher.get_topic(
                    request={"topic": names.topic}, timeout=PING_TIMEOUT
                )
            )
            return
        request = {"project": f"projects/{self.target.project}", "page_size": 1}
        # Reading the first page is the call; the topics themselves do not matter.
        await self._run(lambda: self._publisher.list_topics(request=request, timeout=PING_TIMEOUT))

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        names = self._topic(dataset)
        prepared = [(m.data, attributes_of(dataset, m.key, m.attributes)) for m in messages]
        for data, attributes in prepared:
            check_size(names.topic, data, attributes)
        await self._publish(names.topic, prepared)

    async def _publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return
        futures = await self._run(self._enqueue, topic, messages)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"pubsub {self.target.project}: publish not confirmed within {PUBLISH_TIMEOUT} s"
            ) from exc
        except Exception as exc:  # a failed future, whatever its class: nothing is promised
            raise BackendUnavailable(f"pubsub {self.target.project}: publish: {exc}") from exc

    def _enqueue(self, topic: str, messages: Sequence[Message]) -> list[Future[str]]:
        publish = self._publisher.publish
        return [publish(topic, data, timeout=PUBLISH_TIMEOUT, **attrs) for data, attrs in messages]

    # --- consuming ------------------------------------------------------------------------

    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        names = self._topic(dataset)
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        deadline = time.monotonic() + max(0.0, wait)
        interval = POLL_FIRST
        while True:
            timeout = max(deadline - time.monotonic(), MIN_PULL_TIMEOUT)
            received = await self._pull(names.subscription, max_messages, timeout)
            deliveries = await self._deliveries(dataset, names, received)
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            if not received:  # Pub/Sub may answer empty before the deadline (the emulator does)
                await asyncio.sleep(min(interval, remaining))
                interval = min(interval * 2, POLL_MAX)

    async def _pull(
        self, subscription: str, max_messages: int, rpc_deadline: float
    ) -> list[ReceivedMessage]:
        if self._closed:
            raise BackendUnavailable(f"pubsub {self.target.project}: already closed")
        future = self._executor.submit(
            self._guarded, self._pull_sync, subscription, max_messages, rpc_deadline
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The RPC goes on in its thread: hand back whatever it leases, not after the lease.
            future.add_done_callback(lambda done: self._abandon(subscription, done))
            raise

    def _pull_sync(
        self, subscription: str, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        request = {"subscription": subscription, "max_messages": min(max_messages, PULL_MAX)}
        try:
            response = self._subscriber.pull(request=request, timeout=timeout, retry=None)
        except gexc.DeadlineExceeded:
            return []
        return list(response.received_messages)

    def _abandon(self, subscription: str, done: Future[list[ReceivedMessage]]) -> None:
        if done.cancelled() or done.exception() is not None or self._closed:
            return
        try:
            self._modify(subscription, [m.ack_id for m in done.result()], 0)
        except BackendUnavailable as exc:
            log.warning(
                "could not release abandoned messages (they return after the lease): %s", exc
            )

    async def _deliveries(
        self, dataset: str, names: Names, received: Sequence[ReceivedMessage]
    ) -> list[Delivery]:
        fresh: list[Delivery] = []
        worn: list[tuple[Delivery, int]] = []
        for item in received:
            count = item.delivery_attempt or self._count(item.message.message_id)
            delivery = delivery_of(item, count)
            if count > self._limits.max_deliveries:
                worn.append((delivery, count - 1))  # seen again after its last delivery
            else:
                fresh.append(delivery)
        if worn:
            topic = names.dead_topic
            letters = [dead_message(topic, dataset, d, WORN.format(n), n) for d, n in worn]
            try:
                await self._bury(names, letters, [d for d, _ in worn])
            except BackendUnavailable as exc:  # they come back after the lease and try again
                log.warning("could not dead-letter %d worn-out messages: %s", len(worn), exc)
            else:
                self._buried[dataset] += len(worn)
        return fresh

    def buried(self, dataset: str) -> int:
        """What this instance buried; Pub/Sub's dead letter policy moves others itself."""
        self._topic(dataset)
        return self._buried[dataset]

    def _count(self, message_id: str) -> int:
        """Deliveries seen by this process, for subscriptions without a dead letter policy."""
        count = self._attempts.pop(message_id, 0) + 1
        self._attempts[message_id] = count
        while len(self._attempts) > TRACKED:
            self._attempts.popitem(last=False)
        return count

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None:
        names = self._topic(dataset)
        await self._run(self._acknowledge, names.subscription, [d.handle for d in deliveries])

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        names = self._topic(dataset)
        seconds = int(self.capabilities.delay_for(delay))
        await self._run(self._modify, names.subscription, [d.handle for d in deliveries], seconds)

    def _acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        for start in range(0, len(ack_ids), IDS_PER_CALL):
            chunk = list(ack_ids[start : start + IDS_PER_CALL])
            self._subscriber.acknowledge(request={"subscription": subscription, "ack_ids": chunk})

    def _modify(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        with self._errors():
            for start in range(0, len(ack_ids), IDS_PER_CALL):
                request = {
                    "subscription": subscription,
                    "ack_ids": list(ack_ids[start : start + IDS_PER_CALL]),
                    "ack_deadline_seconds": seconds,
                }
                self._subscriber.modify_ack_deadline(request=request)

    # --- dead letters ---------------------------------------------------------------------

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        names = self._topic(dataset)
        letters = [
            dead_message(names.dead_topic, dataset, d, reason, d.delivery_count) for d in deliveries
        ]
        await self._bury(names, letters, deliveries)

    async def _bury(
        self, names: Names, letters: Sequence[Message], deliveries: Sequence[Delivery]
    ) -> None:
        """Publish to the dead letter topic, then ack: a crash between leaves a duplicate."""
        await self._publish(names.dead_topic, letters)
        await self._run(self._acknowledge, names.subscription, [d.handle for d in deliveries])

    async def backlog(self, dataset: str) -> int:
        """Always 0: Pub/Sub has no cheap count of undelivered messages. Its
        `num_undelivered_messages` lives in Cloud Monitoring (a minute or more late, another API
        and role); a count kept in-process would be wrong as soon as one process publishes and
        another acks. So ingest never answers 503 for backlog with this broker (it does when a
        publish fails), and `capabilities.counts_backlog` says so to whoever asks."""
        self._topic(dataset)
        return 0

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        names = self._topic(dataset)
        async with self._dead_locks[dataset]:
            held = await self._run(self._hold, names.dead_subscription)
            try:
                letters = sorted((letter_of(m) for m in held), key=lambda d: letter_order(d.id))
            finally:
                await self._release(names.dead_subscription, held)
        start = None if after is None else letter_order(after)
        return [d for d in letters if start is None or letter_order(d.id) > start][:limit]

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        names = self._topic(dataset)
        wanted = None if ids is None else set(ids)
        moved = 0
        async with self._dead_locks[dataset]:
            while True:
                held = await self._run(self._hold, names.dead_subscription)
                chosen = replayable(
                    names.topic,
                    dataset,
                    [m for m in held if wanted is None or letter_of(m).id in wanted],
                )
                picked = {m.ack_id for m, _ in chosen}
                rest = [m for m in held if m.ack_id not in picked]
                try:
                    await self._publish(names.topic, [message for _, message in chosen])
                    await self._run(self._acknowledge, names.dead_subscription, list(picked))
                except BaseException:
                    await self._release(names.dead_subscription, held)
                    raise
                await self._release(names.dead_subscription, rest)
                moved += len(chosen)
                if wanted is not None or len(held) < PEEK_MAX or not chosen:
                    return moved

    def _hold(self, subscription: str) -> list[ReceivedMessage]:
        """Lease every dead letter one pull round returns (at most PEEK_MAX)."""
        held: list[ReceivedMessage] = []
        while len(held) < PEEK_MAX:
            request = {
                "subscription": subscription,
                "max_messages": min(PULL_MAX, PEEK_MAX - len(held)),
            }
            try:
                response = self._subscriber.pull(request=request, timeout=PEEK_TIMEOUT, retry=None)
            except gexc.DeadlineExceeded:
                break
            if not response.received_messages:
                break
            held.extend(response.received_messages)
        return held

    async def _release(self, subscription: str, held: Sequence[ReceivedMessage]) -> None:
        if held:
            release = self._run(self._modify, subscription, [m.ack_id for m in held], 0)
            await asyncio.shield(release)
