"""Google Pub/Sub resources of the `pubsub://` broker: URL, names, limits, creation and checks.

Per dataset D (prefix P, `slipstream` by default):
- topic `P-D`, and pull subscription `P-D` on it: ack deadline = the lease, a dead letter policy
  to `P-D-dlq`, a short retry policy, no expiry;
- topic `P-D-dlq`, and subscription `P-D-dlq` on it, which holds the dead letters (a topic keeps
  nothing by itself: without a subscription, dead-lettered messages would be dropped).

Everything here is synchronous (the broker runs it on its threads).
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from google.api_core import exceptions as gexc
from pydantic import field_validator

from slipstream.brokers import TIMED_ID, VARIABLE, BrokerCapabilities, BrokerSettings
from slipstream.errors import ConfigError
from slipstream.options import BackendOptions
from slipstream.registry import shown_url

log = logging.getLogger("slipstream.brokers.pubsub")

DEFAULT_PREFIX = "slipstream"
# Pub/Sub's own bounds (API reference): ack deadline 10..600 s, dead letter policy 5..100
# delivery attempts, subscription retention 10 min..31 days, a publish request 10 MB.
MIN_ACK_DEADLINE, MAX_ACK_DEADLINE = 10, 600
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100
MAX_REQUEST = 10_000_000  # bytes of one publish request, topic name included
CAPABILITIES = BrokerCapabilities(
    dead_letter_ids=TIMED_ID,
    counts_backlog=False,  # only Cloud Monitoring knows, minutes late (PubSubBroker.backlog)
    max_message_bytes=MAX_REQUEST,
    lease_floor=MIN_ACK_DEADLINE,
    lease_ceiling=MAX_ACK_DEADLINE,
    lease_step=1,  # the ack deadline is whole seconds
    min_deliveries=MIN_DELIVERY_ATTEMPTS,
    worn_out_by="either",  # the broker past max_deliveries, the subscription's policy as well
)
MAIN_RETENTION = 7 * 24 * 3600  # Pub/Sub's default, stated
DEAD_RETENTION = 31 * 24 * 3600  # the most Pub/Sub keeps: dead letters wait for a person
DEAD_ACK_DEADLINE = 60  # a listing or a replay holds the dead letters this long at most
# Redelivery backoff after a nack or an expired lease. The worker already backs off through
# nack(delay); this only keeps a message released with delay 0 from spinning.
RETRY_MIN_BACKOFF, RETRY_MAX_BACKOFF = 1, 5
NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")


@dataclass(frozen=True)
class Target:
    project: str
    prefix: str


@dataclass(frozen=True)
class Names:
    topic: str
    subscription: str
    dead_topic: str
    dead_subscription: str


@dataclass(frozen=True)
class Limits:
    """What this broker asks of Pub/Sub, given the settings (see `limits`)."""

    ack_deadline: int
    policy_attempts: int  # the dead letter policy's max_delivery_attempts
    max_deliveries: int  # the setting, enforced exactly by the broker itself


class Options(BackendOptions):
    """`pubsub://PROJECT?prefix=NAME` (docs/backends/pubsub.md)."""

    prefix: str = DEFAULT_PREFIX

    @field_validator("prefix")
    @classmethod
    def _named(cls, prefix: str) -> str:
        if not NAME.fullmatch(prefix + "-x") or prefix.lower().startswith("goog"):
            raise ValueError(
                "must start with a letter and hold only letters, digits and - _ . ~ + %"
                " (Pub/Sub resource names), and not start with goog"
            )
        return prefix


def parse_url(url: str) -> Target:
    """`pubsub://PROJECT[?prefix=NAME]`."""
    parts = urlsplit(url)
    if parts.scheme != "pubsub" or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{VARIABLE}={shown_url(url)!r}: expected pubsub://PROJECT[?prefix=NAME]")
    return Target(parts.netloc, Options.from_url(url, VARIABLE).prefix)


def names_for(target: Target, dataset: str) -> Names:
    base = f"{target.prefix}-{dataset}"
    dead = f"{base}-dlq"
    if not NAME.fullmatch(dead):
        raise ConfigError(f"dataset {dataset!r}: {dead!r} is not a valid Pub/Sub name")
    project = f"projects/{target.project}"
    return Names(
        topic=f"{project}/topics/{base}",
        subscription=f"{project}/subscriptions/{base}",
        dead_topic=f"{project}/topics/{dead}",
        dead_subscription=f"{project}/subscriptions/{dead}",
    )


def limits(settings: BrokerSettings) -> Limits:
    lease = settings.lease_seconds
    ack_deadline = int(CAPABILITIES.lease_for(lease))
    if ack_deadline != lease:
        log.warning(
            "SLIPSTREAM_LEASE_SECONDS=%s: Pub/Sub's ack deadline is %d..%d s; using %d s",
            lease,
            MIN_ACK_DEADLINE,
            MAX_ACK_DEADLINE,
            ack_deadline,
        )
    wanted = settings.max_deliveries
    attempts = min(MAX_DELIVERY_ATTEMPTS, max(CAPABILITIES.min_deliveries, wanted))
    if attempts != wanted:
        log.warning(
            "SLIPSTREAM_MAX_DELIVERIES=%d: Pub/Sub's dead letter policy takes %d..%d attempts;"
            " the policy says %d%s",
            wanted,
            MIN_DELIVERY_ATTEMPTS,
            MAX_DELIVERY_ATTEMPTS,
            attempts,
            " and the broker dead-letters earlier itself" if wanted < attempts else "",
        )
    return Limits(ack_deadline, attempts, wanted)


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)  # proto-plus turns it into a protobuf Duration


def main_subscription(names: Names, lim: Limits) -> dict[str, Any]:
    return {
        "name": names.subscription,
        "topic": names.topic,
        "ack_deadline_seconds": lim.ack_deadline,
        "message_retention_duration": _seconds(MAIN_RETENTION),
        "expiration_policy": {},  # no ttl: never expires, even when idle for 31 days
        "dead_letter_policy": {
            "dead_letter_topic": names.dead_topic,
            "max_delivery_attempts": lim.policy_attempts,
        },
        "retry_policy": {
            "minimum_backoff": _seconds(RETRY_MIN_BACKOFF),
            "maximum_backoff": _seconds(RETRY_MAX_BACKOFF),
        },
    }


def dead_subscription(names: Names) -> dict[str, Any]:
    return {
        "name": names.dead_subscription,
        "topic": names.dead_topic,
        "ack_deadline_seconds": DEAD_ACK_DEADLINE,
        "message_retention_duration": _seconds(DEAD_RETENTION),
        "expiration_policy": {},
    }


def ensure(publisher: Any, subscriber: Any, names: Names, lim: Limits, create: bool) -> None:
    """Create what is missing (`create`), or fail naming every missing resource."""
    if not create:
        _verify(publisher, subscriber, names)
        return
    for topic in (names.topic, names.dead_topic):
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(request={"name": topic})
    # The dead letter subscription first: once the policy exists, dead letters must land.
    for request in (dead_subscription(names), main_subscription(names, lim)):
        try:
            _create_subscription(subscriber, request)
        except gexc.AlreadyExists:
            existing = subscriber.get_subscription(request={"subscription": request["name"]})
            _check(existing, request)


def _create_subscription(subscriber: Any, request: dict[str, Any]) -> None:
    try:
        subscriber.create_subscription(request=request)
    except gexc.InvalidArgument as exc:
        # The emulator keeps 7 days at most (the service 31): settle for its bound.
        longer = request["message_retention_duration"] > _seconds(MAIN_RETENTION)
        if not longer or "retention" not in str(exc):
            raise
        log.warning("%s: %s; keeping messages 7 days instead", request["name"], exc.message)
        subscriber.create_subscription(
            request={**request, "message_retention_duration": _seconds(MAIN_RETENTION)}
        )


def _verify(publisher: Any, subscriber: Any, names: Names) -> None:
    missing = []
    for topic in (names.topic, names.dead_topic):
        try:
            publisher.get_topic(request={"topic": topic})
        except gexc.NotFound:
            missing.append(topic)
    found = {}
    for subscription in (names.subscription, names.dead_subscription):
        try:
            found[subscription] = subscriber.get_subscription(
                request={"subscription": subscription}
            )
        except gexc.NotFound:
            missing.append(subscription)
    if missing:
        raise ConfigError(
            f"Pub/Sub resources missing: {', '.join(missing)}; create them (docs/backends/"
            "pubsub.md lists them) or set SLIPSTREAM_CREATE_RESOURCES=true"
        )
    main = found[names.subscription]
    if not main.dead_letter_policy.dead_letter_topic:
        log.warning(
            "%s has no dead letter policy: the broker dead-letters worn-out messages itself,"
            " counting deliveries in this process only",
            names.subscription,
        )


def _check(existing: Any, wanted: dict[str, Any]) -> None:
    """Keep an existing subscription as it is, but say where it differs from the settings."""
    name = wanted["name"]
    if existing.topic != wanted["topic"]:
        raise ConfigError(
            f"{name} exists but reads {existing.topic}, not {wanted['topic']}; delete it or"
            " use another prefix (pubsub://PROJECT?prefix=NAME)"
        )
    if existing.ack_deadline_seconds != wanted["ack_deadline_seconds"]:
        log.warning(
            "%s exists with an ack deadline of %d s, not %d s: Pub/Sub's value applies",
            name,
            existing.ack_deadline_seconds,
            wanted["ack_deadline_seconds"],
        )
    policy = wanted.get("dead_letter_policy")
    attempts = existing.dead_letter_policy.max_delivery_attempts
    if policy and attempts != policy["max_delivery_attempts"]:
        log.warning(
            "%s exists with a dead letter policy of %s attempts, not %d: messages go to the"
            " dead letters after that many or SLIPSTREAM_MAX_DELIVERIES, whichever comes first",
            name,
            attempts or "no",
            policy["max_delivery_attempts"],
        )
