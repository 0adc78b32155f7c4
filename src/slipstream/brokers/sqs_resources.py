"""AWS resources of the `sqs://` broker: URL, names, creation and checks.

Per dataset D (prefix P, `slipstream` by default):
- queue `P-D`: visibility timeout = the lease, retention 14 days, redrive policy to `P-D-dlq`
  after `max_deliveries` receives; in SNS mode, a policy that lets only topic `P-D` send to it;
- queue `P-D-dlq`: the dead letters, retention 14 days;
- SNS mode only: topic `P-D` and its subscription to queue `P-D` with raw message delivery.

Everything here is synchronous (the broker runs it on its threads).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from pydantic import field_validator

from slipstream.brokers import TIMED_ID, VARIABLE, BrokerCapabilities, BrokerSettings
from slipstream.errors import ConfigError
from slipstream.options import BackendOptions
from slipstream.registry import shown_url

log = logging.getLogger("slipstream.brokers.sqs")

DEFAULT_PREFIX = "slipstream"
RETENTION = 14 * 24 * 3600  # the most SQS keeps; a worker outage of days loses nothing
MAX_VISIBILITY = 43_200  # SQS's bound on a visibility timeout (12 h)
MAX_BYTES = 262_144  # a message (body + attributes), and a whole batch request (SNS's too)
CAPABILITIES = BrokerCapabilities(
    dead_letter_ids=TIMED_ID,
    max_message_bytes=MAX_BYTES,
    lease_floor=1,  # a visibility timeout of 0 would hand a message out again at once
    lease_ceiling=MAX_VISIBILITY,
    lease_step=1,  # visibility timeouts (and long-poll waits) are whole seconds
    worn_out_by="service",  # the queue's redrive policy, out of the broker's sight
)
HOLD_SECONDS = 30  # how long listing or replaying dead letters hides them at most
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")  # also valid as a topic name (256)
REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")
MISSING_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NotFound"}


@dataclass(frozen=True)
class Target:
    region: str
    prefix: str
    sns: bool


@dataclass(frozen=True)
class Names:
    queue: str
    dead_queue: str
    topic: str  # the topic's name; unused without SNS


@dataclass(frozen=True)
class Resources:
    """What one dataset's calls need, found or created at open."""

    queue_url: str
    queue_arn: str
    dead_url: str
    dead_arn: str
    topic_arn: str | None  # None without SNS
    max_receives: int  # the redrive policy's maxReceiveCount


class Options(BackendOptions):
    """`sqs://REGION?prefix=NAME&sns=true|false` (docs/backends/sqs.md)."""

    prefix: str = DEFAULT_PREFIX
    sns: bool = True  # publish to a topic per dataset, which delivers to its queue

    @field_validator("prefix")
    @classmethod
    def _named(cls, prefix: str) -> str:
        if not QUEUE_NAME.fullmatch(prefix):
            raise ValueError("must be letters, digits, - and _ only")
        return prefix


def parse_url(url: str) -> Target:
    """`sqs://REGION[?prefix=NAME][&sns=true|false]`."""
    where = f"{VARIABLE}={shown_url(url)!r}"
    usage = "expected sqs://REGION[?prefix=NAME&sns=true|false], e.g. sqs://us-east-1"
    parts = urlsplit(url)
    if parts.scheme != "sqs" or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{where}: {usage}")
    if not REGION.fullmatch(parts.netloc):
        raise ConfigError(f"{where}: {parts.netloc!r} is not an AWS region")
    options = Options.from_url(url, VARIABLE)
    return Target(parts.netloc, options.prefix, options.sns)


def names_for(target: Target, dataset: str) -> Names:
    base = f"{target.prefix}-{dataset}"
    dead = f"{base}-dlq"
    if not QUEUE_NAME.fullmatch(dead):
        raise ConfigError(
            f"dataset {dataset!r}: SQS queue name {dead!r} must be at most 80 letters, digits,"
            " - and _ (shorten the dataset name or the prefix)"
        )
    return Names(base, dead, base)


def visibility(seconds: float) -> int:
    """A nack's delay → SQS's whole seconds (rounded up, within its bounds)."""
    return int(CAPABILITIES.delay_for(seconds))


def lease(seconds: float) -> int:
    """SLIPSTREAM_LEASE_SECONDS → the queue's visibility timeout."""
    return int(CAPABILITIES.lease_for(seconds))


def queue_policy(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """Lets topic `topic_arn`, and no other, send to the queue."""
    return {
        "Version": "2012-10-17",
        "Id": f"{queue_arn}/slipstream",
        "Statement": [policy_statement(queue_arn, topic_arn)],
    }


def policy_statement(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    return {
        "Sid": "slipstream-topic-sends",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }


def redrive_policy(dead_arn: str, max_receives: int) -> str:
    return json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": max_receives})


def is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in MISSING_CODES


def ensure(
    sqs: Any, sns: Any, target: Target, names: Names, settings: BrokerSettings, create: bool
) -> Resources:
    """Find (and with `create`, make) the dataset's queues, topic and subscription."""
    timeout = lease(settings.lease_seconds)
    if timeout != settings.lease_seconds:
        log.warning(
            "SQS counts visibility in whole seconds: lease %.3g s becomes %d s",
            settings.lease_seconds,
            timeout,
        )
    missing: list[str] = []
    dead_url = _queue(sqs, names.dead_queue, create, {"VisibilityTimeout": str(HOLD_SECONDS)})
    if dead_url is None:
        missing.append(f"queue {names.dead_queue}")
    queue_url = _queue(sqs, names.queue, create, {"VisibilityTimeout": str(timeout)})
    if queue_url is None:
        missing.append(f"queue {names.queue}")
    topic_arn: str | None = None
    if target.sns and (queue_url or dead_url):  # else no account to find the topic in
        topic_arn = _topic(sns, names.topic, create, sqs, queue_url or dead_url)
        if topic_arn is None:
            missing.append(f"topic {names.topic}")
    if missing or queue_url is None or dead_url is None:
        raise ConfigError(
            f"SLIPSTREAM_CREATE_RESOURCES=false and {', '.join(missing)} not found in region "
            f"{target.region}: create them (docs/backends/sqs.md) or let Slipstream do it"
        )
    dead_arn = _arn(sqs, dead_url)
    attributes = _attributes(sqs, queue_url)
    queue_arn = attributes["QueueArn"]
    max_receives = _check_redrive(
        sqs, queue_url, attributes, dead_arn, settings.max_deliveries, create, names
    )
    if attributes.get("VisibilityTimeout") != str(timeout):
        log.warning(
            "queue %s has visibility timeout %s s, not the lease of %d s; leaving it as it is",
            names.queue,
            attributes.get("VisibilityTimeout"),
            timeout,
        )
    if topic_arn is not None:
        _check_policy(sqs, queue_url, attributes.get("Policy"), queue_arn, topic_arn, create)
        _subscribe(sns, topic_arn, queue_arn, create, names)
    return Resources(queue_url, queue_arn, dead_url, dead_arn, topic_arn, max_receives)


def _queue(sqs: Any, name: str, create: bool, attributes: dict[str, str]) -> str | None:
    try:
        url: str = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return url
    except ClientError as exc:
        if not is_missing(exc):
            raise
    if not create:
        return None
    wanted = {
        **attributes,
        "MessageRetentionPeriod": str(RETENTION),
        "SqsManagedSseEnabled": "true",
    }
    log.info("creating SQS queue %s", name)
    url = sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
    return url


def _topic(sns: Any, name: str, create: bool, sqs: Any, queue_url: str | None) -> str | None:
    """The topic's ARN; None when it is missing and `create` is off."""
    if create:  # CreateTopic is idempotent: it returns the existing topic's ARN
        arn: str = sns.create_topic(Name=name)["TopicArn"]
        return arn
    assert queue_url is not None  # the account is the queue's
    account = _arn(sqs, queue_url).split(":")[4]
    region = sns.meta.region_name
    arn = f"arn:aws:sns:{region}:{account}:{name}"
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    return arn


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    found: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return found


def _arn(sqs: Any, url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return arn


def _check_redrive(
    sqs: Any,
    url: str,
    attributes: dict[str, str],
    dead_arn: str,
    max_deliveries: int,
    create: bool,
    names: Names,
) -> int:
    """The queue's maxReceiveCount; with `create`, a missing redrive policy is added."""
    current = json.loads(attributes.get("RedrivePolicy") or "{}")
    if not current:
        if not create:
            raise ConfigError(
                f"queue {names.queue} has no redrive policy: poison messages would come back"
                f" forever; give it one to {names.dead_queue} (docs/backends/sqs.md)"
            )
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"RedrivePolicy": redrive_policy(dead_arn, max_deliveries)}
        )
        return max_deliveries
    receives = int(current.get("maxReceiveCount", max_deliveries))
    if current.get("deadLetterTargetArn") != dead_arn:
        log.warning(
            "queue %s dead-letters to %s, not %s: redriven messages will not be listed",
            names.queue,
            current.get("deadLetterTargetArn"),
            dead_arn,
        )
    if receives != max_deliveries:
        log.warning(
            "queue %s dead-letters after %d receives, not SLIPSTREAM_MAX_DELIVERIES=%d;"
            " leaving it as it is",
            names.queue,
            receives,
            max_deliveries,
        )
    return receives


def _check_policy(
    sqs: Any, url: str, policy_text: str | None, queue_arn: str, topic_arn: str, create: bool
) -> None:
    """Without a statement letting the topic send, SNS drops every message: add one."""
    policy = json.loads(policy_text) if policy_text else None
    statements = (policy or {}).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if any(topic_arn in json.dumps(s.get("Condition", {})) for s in statements):
        return
    if not create:
        log.warning(
            "the policy of queue %s does not name topic %s: SNS cannot deliver to it",
            queue_arn,
            topic_arn,
        )
        return
    if policy is None:
        policy = queue_policy(queue_arn, topic_arn)
    else:
        policy["Statement"] = [*statements, policy_statement(queue_arn, topic_arn)]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})


def _subscribe(sns: Any, topic_arn: str, queue_arn: str, create: bool, names: Names) -> None:
    found = None
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for item in page.get("Subscriptions", []):
            if item.get("Protocol") == "sqs" and item.get("Endpoint") == queue_arn:
                found = item["SubscriptionArn"]
    if found is None:
        if not create:
            raise ConfigError(
                f"topic {names.topic} has no subscription for queue {names.queue}: subscribe it"
                " with RawMessageDelivery=true (docs/backends/sqs.md)"
            )
        log.info("subscribing queue %s to topic %s", names.queue, names.topic)
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )
        return
    attributes = sns.get_subscription_attributes(SubscriptionArn=found)["Attributes"]
    if str(attributes.get("RawMessageDelivery", "false")).lower() != "true":
        if not create:
            raise ConfigError(
                f"the subscription of queue {names.queue} to topic {names.topic} needs"
                " RawMessageDelivery=true (the broker reads raw messages)"
            )
        sns.set_subscription_attributes(
            SubscriptionArn=found, AttributeName="RawMessageDelivery", AttributeValue="true"
        )
