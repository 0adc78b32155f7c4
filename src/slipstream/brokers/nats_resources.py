"""The `nats://` broker's URL, names and JetStream resources (docs/backends/nats.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from nats.js import api
from nats.js.errors import APIError, NotFoundError

from slipstream.errors import ConfigError
from slipstream.registry import shown_url

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from slipstream.config import Settings

VARIABLE = "SLIPSTREAM_BROKER_URL"
DUPLICATE_WINDOW = 120.0  # seconds a key is remembered; the store dedupes beyond it
PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


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
        raise ConfigError(f"{VARIABLE}={shown_url(url)!r}: expected nats://host:4222[,host2:4222]")
    user, colon, password = (unquote(p) for p in userinfo.partition(":"))
    credentials = {"user": user, "password": password} if colon else {"token": user}
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if unknown := sorted(set(query) - {"prefix", "replicas", "max_age"}):
        raise ConfigError(f"{VARIABLE}: unknown parameter {unknown[0]!r} in {shown_url(url)!r}")
    prefix = query.get("prefix", "slipstream")
    if not PREFIX.match(prefix):
        raise ConfigError(f"{VARIABLE}: prefix {prefix!r}: use up to 32 of a-z, 0-9, _, -")
    try:
        replicas = int(query.get("replicas", "1"))
        max_age = float(query["max_age"]) if "max_age" in query else None
    except ValueError as exc:
        raise ConfigError(f"{VARIABLE}: replicas and max_age must be numbers ({exc})") from None
    return servers, Options(prefix, credentials if userinfo else {}, replicas, max_age)


async def ensure(js: JetStreamContext, topic: Topic, options: Options, settings: Settings) -> None:
    """Create or update the streams and the consumer, or check that they exist."""
    if not settings.create_resources:
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
    common: dict[str, Any] = {"storage": api.StorageType.FILE, "max_age": options.max_age}
    common |= {"duplicate_window": DUPLICATE_WINDOW, "num_replicas": options.replicas}
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
    consumer.ack_wait, consumer.max_deliver = settings.lease_seconds, -1  # see docstring
    await js.add_consumer(topic.stream, consumer)  # creates, or updates the lease
