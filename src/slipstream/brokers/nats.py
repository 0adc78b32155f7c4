"""NATS JetStream: per dataset a work-queue stream, one durable pull consumer shared by every
worker, and a dead-letter stream. docs/backends/nats.md gives the reasons for what follows.

Publishes carry `Nats-Msg-Id` = the event key and wait for every PubAck. Pulls repeat no-wait pull
requests (a lingering one that expires as a message comes due loses that delivery before server
2.10.14). Handles are ack subjects; acks are confirmed. The consumer redelivers without limit and
`pull` dead-letters a message delivered more than `max_deliveries` times, as the local broker does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from slipstream.brokers import SEQUENCE_ID, DeadLetter, Delivery, IdShape, Outgoing
from slipstream.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from slipstream.config import Settings

T = TypeVar("T")
log = logging.getLogger("slipstream.brokers.nats")

VARIABLE = "SLIPSTREAM_BROKER_URL"
DUPLICATE_WINDOW = 120.0  # seconds a key is remembered; the store dedupes beyond it
# Seconds to connect (retrying: NATS may be starting next to us), for a JetStream API call, and
# for the replies to a batch (PubAcks, ack confirmations, pulled messages).
CONNECT_TIMEOUT, REQUEST_TIMEOUT, REPLY_TIMEOUT = 5.0, 5.0, 10.0
POLL_FIRST, POLL_MAX = 0.01, 0.1  # seconds between no-wait pull requests while a pull waits
BACKLOG_CACHE_SECONDS = 0.5
MSG_ID, KEY, PUBLISHED = "Nats-Msg-Id", "Slipstream-Key", "Slipstream-Published-At"
RESERVED = ("nats-", "slipstream-")  # header prefixes that are not message attributes
PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
WORN = "delivered {} times without an ack (lease expired or nacked each time)"
DRIVER_ERRORS = (nats.errors.Error, TimeoutError, OSError)

Item = tuple[str, bytes, dict[str, str] | None]  # subject, data, headers


@dataclass(frozen=True)
class Options:
    prefix: str = "slipstream"
    credentials: dict[str, str] = field(default_factory=dict)  # user and password, or token
    replicas: int = 1
    max_age: float | None = None  # seconds; None keeps unconsumed messages for ever


@dataclass(frozen=True, slots=True)
class Topic:
    stream: str
    subject: str
    dlq: str
    dlq_subject: str
    consumer: str

    @classmethod
    def of(cls, prefix: str, dataset: str) -> Topic:
        stream, subject = f"{prefix}_{dataset}".upper(), f"{prefix}.{dataset}"
        return cls(stream, subject, f"{stream}_DLQ", f"{subject}.dlq", f"{prefix}_worker")


def parse_url(url: str) -> tuple[list[str], Options]:
    """`nats://[user:pass@]host[:port][,host[:port]…][?prefix=…&replicas=…&max_age=…]`."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    servers = [f"nats://{host}" for host in hosts.split(",") if host]
    if not servers or parts.path not in ("", "/"):
        raise ConfigError(f"{VARIABLE}={url!r}: expected nats://host:4222[,host2:4222]")
    user, colon, password = (unquote(p) for p in userinfo.partition(":"))
    credentials = {"user": user, "password": password} if colon else {"token": user}
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if unknown := sorted(set(query) - {"prefix", "replicas", "max_age"}):
        raise ConfigError(f"{VARIABLE}: unknown parameter {unknown[0]!r} in {url!r}")
    prefix = query.get("prefix", "slipstream")
    if not PREFIX.match(prefix):
        raise ConfigError(f"{VARIABLE}: prefix {prefix!r}: use up to 32 of a-z, 0-9, _, -")
    try:
        replicas = int(query.get("replicas", "1"))
        max_age = float(query["max_age"]) if "max_age" in query else None
    except ValueError as exc:
        raise ConfigError(f"{VARIABLE}: replicas and max_age must be numbers ({exc})") from None
    return servers, Options(prefix, credentials if userinfo else {}, replicas, max_age)


class NatsBroker:
    dead_letter_ids: ClassVar[IdShape] = SEQUENCE_ID  # a capability (brokers/__init__.py)

    def __init__(self, servers: list[str], options: Options, settings: Settings) -> None:
        self.servers, self.options, self._settings = servers, options, settings
        self.where = ",".join(servers)
        self._nc: Client | None = None
        self._closed = False
        self._last_error: BaseException | None = None
        self._topics: dict[str, Topic] = {}
        self._backlog: dict[str, tuple[int, float]] = {}  # dataset → (count, valid until)

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> NatsBroker:
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

    async def _call(self, doing: str, call: Awaitable[T], missing_ok: bool = False) -> T:
        """Await a JetStream API call; NotFoundError passes when `missing_ok`, for the caller."""
        try:
            return await call
        except DRIVER_ERRORS as exc:
            if missing_ok and isinstance(exc, NotFoundError):
                raise
            raise self._fail(doing, exc) from exc

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
            sub = await nc.subscribe(nc.new_inbox(), cb=collect)
            try:
                for subject, data, headers in batch:
                    await nc.publish(subject, data, reply=sub.subject, headers=headers)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        await finished
            finally:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await sub.unsubscribe()
        except DRIVER_ERRORS as exc:
            raise self._fail(doing, exc) from exc
        if done is None and len(replies) < len(batch):
            raise self._fail(doing, TimeoutError(f"{len(batch) - len(replies)} replies missing"))
        return replies

    async def open(self, datasets: Sequence[str]) -> None:
        if self._nc is None:
            await self._connect()
        for name in datasets:
            topic = Topic.of(self.options.prefix, name)
            await self._call(f"setting up {topic.stream}", self._ensure(self._api, topic))
            self._topics[name] = topic

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            self._last_error = exc
            log.warning("NATS: %r", exc)

        nc, auth = Client(), self.options.credentials
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
                    user=auth.get("user"),
                    password=auth.get("password"),
                    token=auth.get("token"),
                )
        except DRIVER_ERRORS as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise self._fail("cannot connect", self._last_error or exc) from exc
        self._nc = nc

    async def _ensure(self, js: JetStreamContext, topic: Topic) -> None:
        """Create or update the streams and the consumer, or check that they exist."""
        if not self._settings.create_resources:
            try:
                await js.consumer_info(topic.stream, topic.consumer)  # no stream or no consumer
                await js.stream_info(topic.dlq)
                return
            except NotFoundError as exc:
                raise ConfigError(
                    f"NATS {topic.stream}, {topic.dlq} or consumer {topic.consumer}: "
                    f"{exc.description}; SLIPSTREAM_CREATE_RESOURCES is off: create them as "
                    "docs/backends/nats.md shows"
                ) from None
        common: dict[str, Any] = {"storage": api.StorageType.FILE, "max_age": self.options.max_age}
        common |= {"duplicate_window": DUPLICATE_WINDOW, "num_replicas": self.options.replicas}
        queue = api.RetentionPolicy.WORK_QUEUE  # an ack (or a +TERM) deletes the message
        for config in (
            api.StreamConfig(topic.stream, subjects=[topic.subject], retention=queue, **common),
            api.StreamConfig(topic.dlq, subjects=[topic.dlq_subject], **common),
        ):
            try:
                try:
                    await js.update_stream(config)
                except NotFoundError:
                    await js.add_stream(config)
            except APIError as exc:
                raise ConfigError(f"NATS stream {config.name}: {exc.description}") from exc
        consumer = api.ConsumerConfig(durable_name=topic.consumer, filter_subject=topic.subject)
        consumer.ack_policy, consumer.max_ack_pending = api.AckPolicy.EXPLICIT, -1
        consumer.ack_wait, consumer.max_deliver = self._settings.lease_seconds, -1  # see docstring
        await js.add_consumer(topic.stream, consumer)  # creates, or updates the lease

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

    async def _send(self, batch: Sequence[Item]) -> None:
        """Publish, and return once every PubAck is in (a duplicate's too)."""
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
            deliveries = [_delivery(m) for m in await self._fetch(topic, max_messages)]
            if worn := [d for d in deliveries if d.delivery_count > limit]:
                await self._bury(topic, worn, [d.delivery_count - 1 for d in worn], None)
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

    async def dead_letter(self, dataset: str, deliveries: Sequence[Delivery], reason: str) -> None:
        topic = self._topic(dataset)
        await self._bury(topic, deliveries, [d.delivery_count for d in deliveries], reason)

    async def _bury(
        self, topic: Topic, deliveries: Sequence[Delivery], counts: list[int], reason: str | None
    ) -> None:
        """Copy to the dead-letter stream, then +TERM. A failure in between means a second copy
        (dropped as a duplicate within DUPLICATE_WINDOW), never a lost message."""
        batch: list[Item] = []
        for d, count in zip(deliveries, counts, strict=True):
            letter = {"key": d.key, "data": base64.b64encode(d.data).decode(), "deliveries": count}
            letter |= {"reason": reason or WORN.format(count), "published_at": d.published_at}
            letter["attributes"] = d.attributes
            tokens = d.handle.split(".")  # an ack subject; stream sequence at 5, or 7 with domain
            msg_id = f"dead-{topic.stream}-{tokens[5] if len(tokens) == 9 else tokens[7]}"
            batch.append((topic.dlq_subject, orjson.dumps(letter), {MSG_ID: msg_id}))
        await self._send(batch)
        await self._settle(deliveries, Msg.Ack.Term)

    async def backlog(self, dataset: str) -> int:
        topic = self._topic(dataset)
        count, until = self._backlog.get(dataset, (0, 0.0))
        if time.monotonic() >= until:
            doing = f"reading consumer {topic.consumer} of {topic.stream}"
            info = await self._call(doing, self._api.consumer_info(topic.stream, topic.consumer))
            count = (info.num_pending or 0) + (info.num_ack_pending or 0)
            self._backlog[dataset] = (count, time.monotonic() + BACKLOG_CACHE_SECONDS)
        return count

    async def dead_letters(self, dataset: str, limit: int, after: str | None) -> list[DeadLetter]:
        return [_dead_letter(raw) for raw in await self._dead(self._topic(dataset), limit, after)]

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
        batch: list[Item] = []
        for raw in raws:
            letter = orjson.loads(raw.data or b"{}")
            ours = {MSG_ID: f"replay-{topic.dlq}-{raw.seq}", KEY: letter["key"]}
            ours[PUBLISHED] = repr(letter["published_at"])
            data, headers = base64.b64decode(letter["data"]), {**letter["attributes"], **ours}
            batch.append((topic.subject, data, headers))
        await self._send(batch)
        for raw in raws:
            with contextlib.suppress(NotFoundError):  # a replay running alongside took it
                await self._call("deleting", self._api.delete_msg(topic.dlq, raw.seq or 0), True)
        return len(raws)


def _delivery(msg: Msg) -> Delivery:
    headers, meta = dict(msg.headers or {}), msg.metadata
    published = float(headers.pop(PUBLISHED, 0)) or meta.timestamp.timestamp()
    key = headers.pop(KEY, "") or headers.get(MSG_ID, "")
    attributes = {k: v for k, v in headers.items() if not k.lower().startswith(RESERVED)}
    return Delivery(msg.reply, key, msg.data, meta.num_delivered, published, attributes)


def _dead_letter(raw: api.RawStreamMsg) -> DeadLetter:
    letter = orjson.loads(raw.data or b"{}")
    letter.pop("attributes")
    letter["data"] = base64.b64decode(letter["data"])
    dead_at = raw.time.timestamp() if raw.time else time.time()
    return DeadLetter(id=str(raw.seq), dead_at=dead_at, **letter)
