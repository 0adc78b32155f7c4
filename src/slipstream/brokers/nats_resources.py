"""The `nats://` broker's URL, names and JetStream resources (docs/backends/nats.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from nats.js import api
from nats.js.errors import APIError, NotFoundError
from pydantic import Field, field_validator

from slipstream.brokers import SEQUENCE_ID, VARIABLE, BrokerCapabilities, BrokerSettings
from slipstream.errors import ConfigError
from slipstream.options import BackendOptions
from slipstream.registry import shown_url

if TYPE_CHECKING:
    from nats.js import JetStreamContext

DUPLICATE_WINDOW = 120.0  # seconds a key is remembered; the store dedupes beyond it
PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# The message size limit is the server's max_payload, known once connected (the broker's own
# capabilities say it then); `pull` buries worn-out messages (the consumer redelivers forever).
# Each message is a publish and a PubAck, so it takes bundles; its backlog, counted by the server
# in messages, is given in events at the ratio the instance has seen (bundles.EventsPerMessage).
CAPABILITIES = BrokerCapabilities(dead_letter_ids=SEQUENCE_ID, bundles=True)


class Options(BackendOptions):
    """`nats://…?prefix=…&replicas=…&max_age=…` (docs/backends/nats.md)."""

    prefix: str = "slipstream"
    replicas: int = Field(1, ge=1)  # num_replicas of both streams
    max_age: float | None = Field(None, gt=0)  # seconds; None keeps messages for ever

    @field_validator("prefix")
    @classmethod
    def _named(cls, prefix: str) -> str:
        if not PREFIX.match(prefix):
            raise ValueError("must be up to 32 of a-z, 0-9, _ and -, not starting with _ or -")
        return prefix


@dataclass(frozen=True)
class Server:
    """Where the URL says the server is, and how to log in (user and password, or a token)."""

    servers: list[str]
    credentials: dict[str, str]


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


def parse_url(url: str) -> tuple[Server, Options]:
    """`nats://[user:pass@]host[:port][,host[:port]…][?prefix=…&replicas=…&max_age=…]`."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    servers = [f"nats://{host}" for host in hosts.split(",") if host]
    if not servers or parts.path not in ("", "/"):
        raise ConfigError(f"{VARIABLE}={shown_url(url)!r}: expected nats://host:4222[,host2:4222]")
    user, colon, password = (unquote(p) for p in userinfo.partition(":"))
    credentials = {"user": user, "password": password} if colon else {"token": user}
    return Server(servers, credentials if userinfo else {}), Options.from_url(url, VARIABLE)


async def ensure(
    js: JetStreamContext, topic: Topic, options: Options, settings: BrokerSettings
) -> None:
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
