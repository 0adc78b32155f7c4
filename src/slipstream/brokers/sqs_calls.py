"""The synchronous AWS calls of the `sqs://` broker, which runs them on its threads.

One SQS and one SNS client per broker (boto3 clients are thread-safe). boto3 itself retries
throttling, 5xx answers and connection errors (standard mode, 3 attempts); on top of that, the
batch calls here retry the entries a 200 answer lists as failed on AWS's side, because a batch
call succeeds as a whole even when some of its entries did not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import NoRegionError, ProfileNotFound  # type: ignore[import-untyped]

from slipstream.brokers.sqs_messages import Entry, Message
from slipstream.brokers.sqs_resources import MAX_BYTES, Target
from slipstream.errors import BackendUnavailable, ConfigError

T = TypeVar("T")
Kind = Literal["topic", "queue"]
log = logging.getLogger("slipstream.brokers.sqs")

THREADS = 32  # the broker's threads, and the HTTP connection pool of each client
BATCH = 10  # entries per SendMessageBatch / PublishBatch / DeleteMessageBatch / … (SQS's limit)
MAX_WAIT = 20  # SQS's longest long poll
SEND_ATTEMPTS = 4  # tries of a batch entry that failed on AWS's side
PEEK_MAX = 1000  # dead letters held by one listing or replay round
HOLD_WAIT = 1  # long poll of each receive while holding dead letters (short polls sample)
BACKLOG_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
CONFIG = Config(
    max_pool_connections=THREADS,
    connect_timeout=5,
    read_timeout=MAX_WAIT + 10,
    retries={"mode": "standard", "max_attempts": 3},  # throttling, 5xx, connection errors
)


@dataclass
class Calls:
    sqs: Any
    sns: Any  # None without SNS
    region: str

    @classmethod
    def connect(cls, target: Target) -> Calls:
        try:
            session = boto3.session.Session(region_name=target.region)
            sqs = session.client("sqs", config=CONFIG)
            sns = session.client("sns", config=CONFIG) if target.sns else None
        except (ProfileNotFound, NoRegionError) as exc:
            raise ConfigError(f"sqs://: {exc}") from exc
        return cls(sqs, sns, target.region)

    def close(self) -> None:
        for client in (self.sqs, self.sns):
            if client is not None:
                client.close()

    def send_batch(self, kind: Kind, destination: str, batch: Sequence[Entry]) -> None:
        """Send one batch; raise BackendUnavailable unless every entry was accepted."""
        pending = {str(i): item for i, item in enumerate(batch)}
        failed: list[dict[str, Any]] = []
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                time.sleep(0.05 * 2**attempt)  # on the broker's thread, not the event loop
            if kind == "topic":
                response = self.sns.publish_batch(
                    TopicArn=destination,
                    PublishBatchRequestEntries=[
                        {"Id": i, "Message": e.body, "MessageAttributes": e.wire()}
                        for i, e in pending.items()
                    ],
                )
            else:
                response = self.sqs.send_message_batch(
                    QueueUrl=destination,
                    Entries=[
                        {"Id": i, "MessageBody": e.body, "MessageAttributes": e.wire()}
                        for i, e in pending.items()
                    ],
                )
            failed = response.get("Failed", [])
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            if not pending:
                return
            refused = [f for f in failed if f.get("SenderFault")]
            if refused:
                raise BackendUnavailable(
                    f"sqs {self.region}: {len(refused)} of {len(batch)} messages refused"
                    f" ({refused[0].get('Code')}: {refused[0].get('Message')})"
                )
        raise BackendUnavailable(
            f"sqs {self.region}: {len(pending)} of {len(batch)} messages still unsent after"
            f" {SEND_ATTEMPTS} attempts ({failed[0].get('Code')}: {failed[0].get('Message')})"
        )

    def receive(self, url: str, count: int, wait: int, lease: int) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            VisibilityTimeout=lease,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        messages: list[Message] = response.get("Messages", [])
        return messages

    def delete(self, url: str, handles: Sequence[str]) -> None:
        self._by_handle(
            "delete",
            lambda entries: self.sqs.delete_message_batch(QueueUrl=url, Entries=entries),
            [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
        )

    def visibility(self, url: str, handles: Sequence[str], seconds: int) -> None:
        self._by_handle(
            "change the visibility of",
            lambda entries: self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries),
            [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                for i, h in enumerate(handles)
            ],
        )

    def _by_handle(
        self, action: str, call: Callable[[list[dict[str, Any]]], Any], entries: list[Any]
    ) -> None:
        """One batch call by receipt handle, retrying entries that failed on AWS's side.

        A handle refused as the sender's fault (the message was deleted meanwhile, or its
        lease ran out and someone else received it) is only logged: the message comes back
        after its lease, and the store writes each event once whatever the deliveries.
        """
        pending = {e["Id"]: e for e in entries}
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            failed = call(list(pending.values())).get("Failed", [])
            refused = [f for f in failed if f.get("SenderFault")]
            if refused:
                log.warning(
                    "could not %s %d messages (%s: %s)",
                    action,
                    len(refused),
                    refused[0].get("Code"),
                    refused[0].get("Message"),
                )
            pending = {f["Id"]: pending[f["Id"]] for f in failed if not f.get("SenderFault")}
            if not pending:
                return
        raise BackendUnavailable(f"sqs {self.region}: could not {action} {len(pending)} messages")

    def hold(self, url: str, seconds: int) -> list[Message]:
        """Receive the messages SQS counts (PEEK_MAX at most), each hidden `seconds`.

        Counting first spares the final empty long poll (a second) when all are in hand; a
        message too fresh to be counted yet is missed by this round, and short polls could not
        be trusted instead (they sample some of SQS's servers and may answer empty)."""
        counted = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        expected = min(PEEK_MAX, int(counted.get("ApproximateNumberOfMessages", 0)))
        held: dict[str, Message] = {}
        while len(held) < expected:
            messages = self.receive(url, min(BATCH, expected - len(held)), HOLD_WAIT, seconds)
            if not messages:
                break
            held.update((m["MessageId"], m) for m in messages)
        return list(held.values())

    def backlog(self, url: str) -> int:
        found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=BACKLOG_ATTRIBUTES)
        return sum(int(found["Attributes"].get(name, 0)) for name in BACKLOG_ATTRIBUTES)

    def ping(self, url: str | None, topic_arn: str | None) -> None:
        if url is None:
            self.sqs.list_queues(MaxResults=1)
            return
        self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        if topic_arn is not None:
            self.sns.get_topic_attributes(TopicArn=topic_arn)


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def batches(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Up to BATCH entries, and MAX_BYTES all together, per request."""
    result: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for item in entries:
        if current and (len(current) == BATCH or size + item.size > MAX_BYTES):
            result.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        result.append(current)
    return result
