"""NATS JetStream: per dataset a work-queue stream, one durable pull consumer shared by every
worker, and a dead-letter stream. docs/backends/nats.md gives the reasons for what follows.

Publishes carry `Nats-Msg-Id` = the message key (an event's id, or a bundle's key made from its
events' keys, bundles.py) and wait for every PubAck. Pulls repeat no-wait pull
requests (a lingering one that expires as a message comes due loses that delivery before server
2.10.14). Handles are ack subjects; acks are confirmed. The consumer redelivers without limit and
`pull` dead-letters a message delivered more than `max_deliveries` times, as the local broker does.
Every exchange with the server fails as soon as the connection is lost, not at its timeout.
Messages ↔ deliveries and dead letters: nats_messages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, TypeVar

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

from slipstream.brokers import BrokerSettings, DeadLetter, Delivery, Outgoing
from slipstream.brokers.nats_messages import (
    MSG_ID,
    WORN,
    Item,
    dead_letter_of,
    delivery_of,
    letter,
    replay_item,
    wire_size,
)
from slipstream.brokers.nats_resources import (
    CAPABILITIES,
    Options,
    Server,
    Topic,
    ensure,
    parse_url,
)
from slipstream.bundles import EventsPerMessage, count_of
from slipstream.errors import BackendUnavailable, MessageTooLarge
from slipstream.options import BackendOptions

if TYPE_CHECKING:
    from nats.js import JetStreamContext

T = TypeVar("T")
log = logging.getLogger("slipstream.brokers.nats")

# Seconds to connect (retrying: NATS may be starting next to us), for a JetStream API call, and
# for the replies to a batch (PubAcks, ack confirmations, pulled messages).
CONNECT_TIMEOUT, REQUEST_TIMEOUT, REPLY_TIMEOUT = 5.0, 5.0, 10.0
POLL_FIRST, POLL_MAX = 0.01, 0.1  # seconds between no-wait pull requests while a pull waits
BACKLOG_CACHE_SECONDS = 0.5
DRIVER_ERRORS = (nats.errors.Error, TimeoutError, OSError)


class NatsBroker:
    capabilities = CAPABILITIES  # with the server's max_payload once connected
    url_options: ClassVar[type[BackendOptions]] = Options

    def __init__(self, server: Server, options: Options, settings: BrokerSettings) -> None:
        self.servers, self.options, self._settings = server.servers, options, settings
        self._credentials = server.credentials
        self.where = ",".join(self.servers)
        self._nc: Client | None = None
        self._closed = False
        self._last_error: BaseException | None = None
        self._topics: dict[str, Topic] = {}
        self._backlog: dict[str, tuple[int, float]] = {}  # dataset → (count, valid until)
        self._buried: Counter[str] = Counter()
        self._per_message: defaultdict[str, EventsPerMessage] = defaultdict(EventsPerMessage)
        # One future per exchange in flight, resolved when the connection is lost.
        self._watchers: set[asyncio.Future[None]] = set()

    @classmethod
    def from_url(cls, url: str, settings: BrokerSettings) -> NatsBroker:
        return cls(*parse_url(url), settings)

    def _fail(self, doing: str, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"NATS {self.where}: {doing}: {str(exc) or repr(exc)}")

    def _connection(self) -> Client:
        if self._nc is None or self._closed:
            raise BackendUnavailable("NATS broker: not open (call open() first) or already closed")
        if not self._nc.is_connected:
            raise BackendUnavailable(f"NATS {self.where}: disconnected, reconnecting")
        return self._nc

    @property
    def _api(self) -> JetStreamContext:
        return self._connection().jetstream(timeout=REQUEST_TIMEOUT)

    @contextlib.contextmanager
    def _watch(self) -> Iterator[asyncio.Future[None]]:
        """A future resolved if the connection is lost before the block ends."""
        lost = asyncio.get_running_loop().create_future()
        self._watchers.add(lost)
        try:
            yield lost
        finally:
            self._watchers.discard(lost)

    def _lost(self) -> None:
        """The client saw the connection go: what is in flight will get no reply, say so now."""
        for lost in self._watchers:
            if not lost.done():
                lost.set_result(None)

    async def _call(self, doing: str, call: Awaitable[T], missing_ok: bool = False) -> T:
        """Await a JetStream API call; NotFoundError passes when `missing_ok`, for the caller."""
        task, answered = asyncio.ensure_future(call), False
        try:
            with self._watch() as lost:
                await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
            answered = task.done()
        finally:
            if not task.done():
                task.cancel()
        if not answered:
            raise self._fail(doing, ConnectionError("connection lost before the answer"))
        try:
            return task.result()
        except DRIVER_ERRORS as exc:
            if missing_ok and isinstance(exc, NotFoundError):
                raise
            raise self._fail(doing, exc) from exc

    def _max_payload(self) -> int:
        """The server's limit on a message, headers included, as the capabilities say it
        (learnt at connect and at each reconnect: a cluster's servers may differ)."""
        self._connection()  # not open, or disconnected: BackendUnavailable
        limit = self.capabilities.max_message_bytes
        assert limit is not None, "set when connected"
        return limit

    def _learn_limits(self, nc: Client) -> None:
        self.capabilities = replace(CAPABILITIES, max_message_bytes=nc.max_payload)

    def _topic(self, dataset: str) -> Topic:
        try:
            return self._topics[dataset]
        except KeyError:
            raise ValueError(f"unknown dataset {dataset!r}: not opened by this broker") from None

    async def _exchange(
        self, doing: str, batch: Sequence[Item], done: Callable[[list[Msg]], bool] | None = None
    ) -> list[Msg]:
        """Send a batch with one reply inbox; collect replies until `done` says so (by default:
        one per message, all required) or REPLY_TIMEOUT. One socket write, no task per message."""
        nc, replies = self._connection(), list[Msg]()
        expected = done or (lambda got: len(got) == len(batch))
        finished = asyncio.get_running_loop().create_future()

        async def collect(msg: Msg) -> None:
            replies.append(msg)
            if expected(replies) and not finished.done():
                finished.set_result(None)

        try:
            with self._watch() as lost:
                sub = await nc.subscribe(nc.new_inbox(), cb=collect)
                try:
                    for subject, data, headers in batch:
                        await nc.publish(subject, data, reply=sub.subject, headers=headers)
                    await asyncio.wait(
                        (finished, lost), timeout=REPLY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await sub.unsubscribe()
        except DRIVER_ERRORS as exc:
            raise self._fail(doing, exc) from exc
        if lost.done() and not finished.done():
            raise self._fail(doing, ConnectionError("connection lost before every reply came"))
        if done is None and len(replies) < len(batch):
            raise self._fail(doing, TimeoutError(f"{len(batch) - len(replies)} replies missing"))
        return replies

    async def open(self, datasets: Sequence[str]) -> None:
        if self._nc is None:
            await self._connect()
        for name in datasets:
            topic = Topic.of(self.options.prefix, name)
            await self._call(
                f"setting up {topic.stream}", ensure(self._api, topic, self.options, self._settings)
            )
            self._topics[name] = topic

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            self._last_error = exc
            log.warning("NATS: %r", exc)

        async def on_disconnected() -> None:
            self._lost()

        async def on_reconnected() -> None:
            self._learn_limits(nc)

        nc, auth = Client(), self._credentials
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await nc.connect(
                    servers=self.servers,
                    name="slipstream",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,  # an outage ends; the process stays
                    reconnect_time_wait=1,
                    ping_interval=5,
                    max_outstanding_pings=3,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                    user=auth.get("user"),
                    password=auth.get("password"),
                    token=auth.get("token"),
                )
        except DRIVER_ERRORS as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise self._fail("cannot connect", self._last_error or exc) from exc
        self._nc = nc
        self._learn_limits(nc)

    async def close(self) -> None:
        nc, self._nc, self._closed = self._nc, None, True
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def ping(self) -> None:
        await self._call("ping", self._api.account_info())

    async def publish(self, dataset: str, messages: Sequence[Outgoing]) -> None:
        subject = self._topic(dataset).subject
        await self._send([(subject, m.data, {**m.attributes, MSG_ID: m.key}) for m in messages])
        self._per_message[dataset].saw([m.attributes for m in messages])

    async def _send(self, batch: Sequence[Item]) -> None:
        """Publish, and return once every PubAck is in (a duplicate's too). A message over the
        server's limit fails the batch before any is sent: the server would cut the connection."""
        limit = self._max_payload()
        for _, data, headers in batch:
            if (size := wire_size(data, headers)) > limit:
                key = (headers or {}).get(MSG_ID, "")
                raise MessageTooLarge(
                    f"message {key!r} takes {size} bytes with its headers; the NATS server "
                    f"accepts {limit} at most (its max_payload)"
                )
        for ack in await self._exchange(f"publishing to {batch[0][0]}", batch) if batch else []:
            status = (ack.headers or {}).get("Status")
            reply = {} if status else orjson.loads(ack.data)
            if status or "error" in reply:
                why = "no stream listens (503)" if status == "503" else reply.get("error", status)
                raise BackendUnavailable(f"NATS publish to {batch[0][0]} refused: {why}")

    async def pull(self, dataset: str, max_messages: int, wait: float) -> list[Delivery]:
        topic, limit = self._topic(dataset), self._settings.max_deliveries
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        deadline, interval = time.monotonic() + max(0.0, wait), POLL_FIRST
        while True:
            deliveries = [delivery_of(m) for m in await self._fetch(topic, max_messages)]
            self._per_message[dataset].saw([d.attributes for d in deliveries])
            if worn := [d for d in deliveries if d.delivery_count > limit]:
                await self._bury_worn(dataset, topic, worn)
            fresh = [d for d in deliveries if d.delivery_count <= limit]
            remaining = deadline - time.monotonic()
            if fresh or remaining <= 0:
                return fresh
            if not deliveries:
                await asyncio.sleep(min(interval, remaining))
                interval = min(interval * 2, POLL_MAX)

    async def _fetch(self, topic: Topic, batch: int) -> list[Msg]:
        """One no-wait pull request: up to `batch` of the messages there now."""
        to = f"$JS.API.CONSUMER.MSG.NEXT.{topic.stream}.{topic.consumer}"
        request = (to, orjson.dumps({"batch": batch, "no_wait": True}), None)
        doing = f"pulling from {topic.stream}"
        replies = await self._exchange(  # a status ends the request: 404, 408, 409…
            doing, [request], lambda r: len(r) >= batch or "Status" in (r[-1].headers or {})
        )
        for msg in replies:
            status = (msg.headers or {}).get("Status")
            if status not in (None, "404", "408"):  # 404, 408: no (more) messages
                raise BackendUnavailable(f"NATS {doing}: {status} {msg.headers}")
        return [msg for msg in replies if "Status" not in (msg.headers or {})]

    async def _settle(self, deliveries: Sequence[Delivery], payload: bytes) -> None:
        """Ack, nack or term each delivery; return once the server confirmed every one."""
        if bad := [d.handle for d in deliveries if not d.handle.startswith("$JS.ACK.")]:
            raise ValueError(f"not a NATS delivery handle: {bad[0]!r}")
        if deliveries:
            await self._exchange("acknowledging", [(d.handle, payload, None) for d in deliveries])

    async def ack(self, dataset: str, deliveries: Sequence[Delivery]) -> None:
        self._topic(dataset)
        await self._settle(deliveries, Msg.Ack.Ack)

    async def nack(self, dataset: str, deliveries: Sequence[Delivery], delay: float) -> None:
        self._topic(dataset)
        delayed = b" " + orjson.dumps({"delay": int(delay * 1e9)}) if delay > 0 else b""
        await self._settle(deliveries, Msg.Ack.Nak + delayed)

    async def _bury_worn(self, dataset: str, topic: Topic, worn: Sequence[Delivery]) -> None:
        """Dead-letter what came back after its last delivery; if that fails, the messages come
        back after the lease and are tried again, and the pull goes on with the others."""
        counts = [d.delivery_count - 1 for d in worn]
        try:
            await self._bury(topic, worn, counts, [WORN.format(n) for n in counts])
        except BackendUnavailable as exc:
            log.warning("could not dead-letter %d worn-out messages: %s", len(worn), exc)
            return
        self._buried[dataset] += sum(count_of(d.attributes) for d in worn)

    def buried(self, dataset: str) -> int:
        self._topic(dataset)
        return self._buried[dataset]

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        topic = self._topic(dataset)
        counts = [d.delivery_count for d in deliveries]
        await self._bury(topic, deliveries, counts, [reason] * len(deliveries))

    async def _bury(
        self, topic: Topic, deliveries: Sequence[Delivery], counts: list[int], reasons: list[str]
    ) -> None:
        """Copy to the dead-letter stream, then +TERM. A failure in between means a second copy
        (dropped as a duplicate within DUPLICATE_WINDOW), never a lost message."""
        limit = self._max_payload()
        batch = [
            letter(topic, d, count, reason, limit)
            for d, count, reason in zip(deliveries, counts, reasons, strict=True)
        ]
        await self._send(batch)
        await self._settle(deliveries, Msg.Ack.Term)

    async def backlog(self, dataset: str) -> int:
        topic = self._topic(dataset)
        count, until = self._backlog.get(dataset, (0, 0.0))
        if time.monotonic() >= until:
            doing = f"reading consumer {topic.consumer} of {topic.stream}"
            info = await self._call(doing, self._api.consumer_info(topic.stream, topic.consumer))
            messages = (info.num_pending or 0) + (info.num_ack_pending or 0)
            count = self._per_message[dataset].events(messages)
            self._backlog[dataset] = (count, time.monotonic() + BACKLOG_CACHE_SECONDS)
        return count

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        return [dead_letter_of(r) for r in await self._dead(self._topic(dataset), limit, after)]

    async def _dead(self, topic: Topic, limit: int, after: str | None) -> list[api.RawStreamMsg]:
        """Up to `limit` dead letters after the stream sequence `after`, oldest first."""
        seq, found = int(after) + 1 if after else 1, list[api.RawStreamMsg]()
        while len(found) < limit:
            try:
                get = self._api.get_msg(topic.dlq, seq, topic.dlq_subject, next=True)
                found.append(await self._call(f"reading {topic.dlq}", get, missing_ok=True))
            except NotFoundError:
                break
            seq = (found[-1].seq or seq) + 1
        return found

    async def replay_dead_letters(self, dataset: str, ids: Sequence[str] | None) -> int:
        topic, replayed = self._topic(dataset), 0
        if ids is None:
            while page := await self._dead(topic, 500, None):
                replayed += await self._replay(topic, page)
            return replayed
        wanted = []
        for seq in map(int, ids):
            with contextlib.suppress(NotFoundError):  # replayed already
                get = self._api.get_msg(topic.dlq, seq)
                wanted.append(await self._call(f"reading {topic.dlq}", get, missing_ok=True))
        return await self._replay(topic, wanted)

    async def _replay(self, topic: Topic, raws: Sequence[api.RawStreamMsg]) -> int:
        """Publish again (a fresh message id, the original key), then delete from the DLQ."""
        await self._send([replay_item(raw, topic.subject, topic.dlq) for raw in raws])
        for raw in raws:
            with contextlib.suppress(NotFoundError):  # a replay running alongside took it
                await self._call("deleting", self._api.delete_msg(topic.dlq, raw.seq or 0), True)
        return len(raws)
