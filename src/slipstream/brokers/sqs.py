"""AWS SNS→SQS, `sqs://REGION[?prefix=NAME&sns=true|false]`: a topic and a queue per dataset.

boto3 is synchronous: its calls (sqs_calls.py) run on a thread pool of the broker's own, through
one SQS and one SNS client made at open. `AWS_ENDPOINT_URL` and the usual AWS_* variables are
read by boto3 itself (that is how the tests reach moto). docs/backends/sqs.md tells the whole
story; in short:

- publish goes to the dataset's topic (`PublishBatch`), which delivers raw to the queue; with
  `sns=false` straight to the queue (`SendMessageBatch`); batches of 10 sent in parallel, failed
  entries retried, and publish returns only when every message was accepted;
- a lease is the visibility timeout (whole seconds); `delivery_count` is ApproximateReceiveCount;
  the queue's redrive policy moves a message received `max_deliveries` times to `P-D-dlq`;
- dead letters cannot be browsed: listing receives them all and at once releases them, so it
  is approximate (see `dead_letters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from slipstream.brokers import BrokerSettings, DeadLetter, Delivery, Outgoing
from slipstream.brokers.sqs_calls import (
    BATCH,
    MAX_WAIT,
    PEEK_MAX,
    THREADS,
    Calls,
    Kind,
    batches,
    chunks,
)
from slipstream.brokers.sqs_messages import (
    Entry,
    Message,
    dead_entry,
    delivery_of,
    entry,
    letter_of,
    letter_order,
    replayed,
)
from slipstream.brokers.sqs_resources import (
    CAPABILITIES,
    HOLD_SECONDS,
    Options,
    Resources,
    Target,
    ensure,
    lease,
    names_for,
    parse_url,
    visibility,
)
from slipstream.errors import BackendUnavailable, ConfigError, MessageTooLarge
from slipstream.options import BackendOptions

T = TypeVar("T")
log = logging.getLogger("slipstream.brokers.sqs")

SEND_CONCURRENCY = 8  # batches of one publish in flight at once
PULL_CONCURRENCY = 5  # ReceiveMessage calls of one pull in flight at once, after the first
COLLECT_SHARE = 0.25  # of the lease, the most one pull spends collecting after its first call
BACKLOG_CACHE_SECONDS = 0.5


class SqsBroker:
    capabilities = CAPABILITIES
    url_options: ClassVar[type[BackendOptions]] = Options

    def __init__(self, target: Target, settings: BrokerSettings) -> None:
        self.target = target
        self._settings = settings
        self._lease = lease(settings.lease_seconds)
        self._executor = ThreadPoolExecutor(
            max_workers=THREADS, thread_name_prefix="slipstream-sqs"
        )
        self._calls: Calls | None = None
        self._resources: dict[str, Resources] = {}
        self._dead_locks: dict[str, asyncio.Lock] = {}
        self._backlog: dict[str, tuple[int, float]] = {}  # dataset → (count, valid until)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, settings: BrokerSettings) -> SqsBroker:
        return cls(parse_url(url), settings)

    # --- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BackendUnavailable(
                f"sqs {self.target.region}: {error.get('Code')}: {error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"sqs {self.target.region}: {exc}") from exc

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        with self._errors():
            return fn(*args)

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._closed:
            raise BackendUnavailable(f"sqs {self.target.region}: already closed")
        return self._executor.submit(self._guarded, fn, *args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(fn, *args))

    @property
    def _aws(self) -> Calls:
        if self._calls is None:
            raise BackendUnavailable(f"sqs {self.target.region}: not open")
        return self._calls

    def _of(self, dataset: str) -> Resources:
        try:
            return self._resources[dataset]
        except KeyError:
            raise ValueError(f"unknown dataset {dataset!r}: not opened by this broker") from None

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self, datasets: Sequence[str]) -> None:
        try:
            if self._calls is None:
                self._calls = await self._run(Calls.connect, self.target)
            aws = self._calls
            for dataset in datasets:
                if dataset in self._resources:
                    continue
                names = names_for(self.target, dataset)
                create = self._settings.create_resources
                self._resources[dataset] = await self._run(
                    ensure, aws.sqs, aws.sns, self.target, names, self._settings, create
                )
                self._dead_locks[dataset] = asyncio.Lock()
        except BackendUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, NoCredentialsError | PartialCredentialsError):
                raise ConfigError(
                    f"sqs:// needs AWS credentials ({cause}): set AWS_ACCESS_KEY_ID and"
                    " AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an IAM role"
                ) from exc
            raise

    async def close(self) -> None:
        if self._closed:
            return
        if self._calls is not None:
            with contextlib.suppress(BackendUnavailable, RuntimeError):
                await self._run(self._calls.close)
        self._closed = True
        self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        resources = next(iter(self._resources.values()), None)
        url = None if resources is None else resources.queue_url
        topic_arn = None if resources is None else resources.topic_arn
        await self._run(self._aws.ping, url, topic_arn)

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        resources = self._of(dataset)
        if not messages:
            return
        entries = [entry(m.key, m.data, m.attributes) for m in messages]  # ValueError: too big
        if resources.topic_arn is not None:
            await self._send("topic", resources.topic_arn, entries)
        else:
            await self._send("queue", resources.queue_url, entries)

    async def _send(self, kind: Kind, destination: str, entries: Sequence[Entry]) -> None:
        """Send every entry, batches in parallel; raise unless all of them were accepted."""
        aws = self._aws
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(batch: list[Entry]) -> None:
            async with gate:
                await self._run(aws.send_batch, kind, destination, batch)

        results = await asyncio.gather(*(one(b) for b in batches(entries)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            if len(failures) > 1:
                log.warning("%d of %d batches failed to send", len(failures), len(results))
            raise failures[0]

    # --- consuming ------------------------------------------------------------------------

    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        url = self._of(dataset).queue_url
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        # SQS waits whole seconds: an idle pull may wait up to 1 s more than `wait`.
        first_wait = min(MAX_WAIT, math.ceil(max(0.0, wait)))
        got: list[Message] = []
        try:
            started = time.monotonic()
            got.extend(await self._receive(url, min(BATCH, max_messages), first_wait))
            # Collecting stops early enough that the first messages keep most of their lease:
            # a round starts only if it would end within budget even if its calls ran one
            # after the other, each as long as the whole last round (moto serialises them).
            took = time.monotonic() - started
            budget = time.monotonic() + self._lease * COLLECT_SHARE
            while got and len(got) < max_messages:
                remaining = max_messages - len(got)
                calls = min(PULL_CONCURRENCY, math.ceil(remaining / BATCH))
                if time.monotonic() + took * calls > budget:
                    break
                sizes = [min(BATCH, remaining - BATCH * i) for i in range(calls)]
                started = time.monotonic()
                results = await asyncio.gather(
                    *(self._receive(url, n, 0) for n in sizes), return_exceptions=True
                )
                took = time.monotonic() - started
                fresh = [m for r in results if isinstance(r, list) for m in r]
                got.extend(fresh)
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors:  # keep what arrived; the next pull tries again
                    log.warning("receive failed after %d messages: %s", len(got), errors[0])
                    break
                if not fresh:
                    break
        except asyncio.CancelledError:
            self._release_later(url, got)
            raise
        return [delivery_of(m) for m in _once_each(got)]

    async def _receive(self, url: str, count: int, wait: int) -> list[Message]:
        future = self._submit(self._aws.receive, url, count, wait, self._lease)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The call goes on in its thread: hand back what it leases, not after the lease.
            future.add_done_callback(lambda done: self._abandon(url, done))
            raise

    def _abandon(self, url: str, done: Future[list[Message]]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._release_later(url, done.result())

    def _release_later(self, url: str, messages: Sequence[Message]) -> None:
        if messages and self._calls is not None:
            handles = [m["ReceiptHandle"] for m in messages]
            with contextlib.suppress(RuntimeError, BackendUnavailable):  # pool shut down
                self._submit(self._calls.visibility, url, handles, 0)

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None:
        await self._delete(self._of(dataset).queue_url, [d.handle for d in deliveries])

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        url = self._of(dataset).queue_url
        await self._visibility(url, [d.handle for d in deliveries], visibility(delay))

    async def _delete(self, url: str, handles: Sequence[str]) -> None:
        aws = self._aws
        await asyncio.gather(*(self._run(aws.delete, url, c) for c in chunks(handles, BATCH)))

    async def _visibility(self, url: str, handles: Sequence[str], seconds: int) -> None:
        aws = self._aws
        await asyncio.gather(
            *(self._run(aws.visibility, url, c, seconds) for c in chunks(handles, BATCH))
        )

    async def backlog(self, dataset: str) -> int:
        url = self._of(dataset).queue_url
        cached = self._backlog.get(dataset)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        count = await self._run(self._aws.backlog, url)
        self._backlog[dataset] = (count, time.monotonic() + BACKLOG_CACHE_SECONDS)
        return count

    # --- dead letters ---------------------------------------------------------------------

    def buried(self, dataset: str) -> int:
        """Always 0: the queue's redrive policy moves worn-out messages, out of the broker's
        sight (the dead letter queue's depth, in CloudWatch, counts them)."""
        self._of(dataset)
        return 0

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        """Send to the dead letter queue, then delete: a crash between leaves a duplicate."""
        resources = self._of(dataset)
        now = time.time()
        # A microsecond apart each, so that the listing keeps the order of the call.
        letters = [dead_entry(d, reason, now + i / 1e6) for i, d in enumerate(deliveries)]
        await self._send("queue", resources.dead_url, letters)
        await self._delete(resources.queue_url, [d.handle for d in deliveries])

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        """Approximate: SQS cannot browse a queue. The dead letters SQS counts (PEEK_MAX at
        most) are received, hidden for the instant of the listing, then released; one that
        another listing or replay holds at that instant, or too fresh to be counted, is missed."""
        resources = self._of(dataset)
        start = None if after is None else letter_order(after)
        async with self._dead_locks[dataset]:
            held = await self._run(self._aws.hold, resources.dead_url, HOLD_SECONDS)
            try:
                letters = sorted(
                    (letter_of(m, resources.max_receives) for m in held),
                    key=lambda d: letter_order(d.id),
                )
            finally:
                await self._release(resources.dead_url, held)
        return [d for d in letters if start is None or letter_order(d.id) > start][:limit]

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        """Send dead letters back to the dataset's queue (not the topic: other subscribers of
        the topic had them already), then delete them from the dead letter queue."""
        resources = self._of(dataset)
        wanted = None if ids is None else set(ids)
        moved = 0
        async with self._dead_locks[dataset]:
            while True:
                held = await self._run(self._aws.hold, resources.dead_url, HOLD_SECONDS)
                chosen = _replayable(
                    m
                    for m in held
                    if wanted is None or letter_of(m, resources.max_receives).id in wanted
                )
                picked = {m["ReceiptHandle"] for m, _ in chosen}
                rest = [m for m in held if m["ReceiptHandle"] not in picked]
                try:
                    if chosen:
                        await self._send("queue", resources.queue_url, [e for _, e in chosen])
                        await self._delete(resources.dead_url, list(picked))
                except BaseException:
                    await self._release(resources.dead_url, held)
                    raise
                await self._release(resources.dead_url, rest)
                moved += len(chosen)
                if wanted is not None or len(held) < PEEK_MAX or not chosen:
                    return moved

    async def _release(self, url: str, held: Sequence[Message]) -> None:
        if held:
            handles = [m["ReceiptHandle"] for m in held]
            await asyncio.shield(self._visibility(url, handles, 0))


def _replayable(messages: Iterable[Message]) -> list[tuple[Message, Entry]]:
    """Letters with their entries to send again; one over the broker's message size (a message
    another client sent straight to the queue, up to SQS's own limit, then redriven) stays in the
    dead letters, and is logged."""
    chosen = []
    for message in messages:
        try:
            chosen.append((message, replayed(message)))
        except MessageTooLarge as exc:
            log.warning(
                "dead letter %s stays: it cannot be sent again (%s)", message["MessageId"], exc
            )
    return chosen


def _once_each(messages: Sequence[Message]) -> list[Message]:
    """One delivery per message: parallel receives can both return a message (SQS is
    at-least-once; moto does it under load), and the later receive's handle is the one that
    counts (SQS deletes with the most recent receipt handle)."""
    latest: dict[str, Message] = {}
    for message in messages:
        prior = latest.get(message["MessageId"])
        if prior is None or _receives(message) >= _receives(prior):
            latest[message["MessageId"]] = message
    return list(latest.values())


def _receives(message: Message) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0))
