"""`slipstream publish`: the API's intake rules, straight onto the broker a server reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from slipstream.brokers import BROKERS, BrokerLifecycle, Described, Publisher, create_broker
from slipstream.bundles import for_broker
from slipstream.config import Settings
from slipstream.datasets import load_catalog
from slipstream.errors import ConfigError, MessageTooLarge
from slipstream.events import EventCodec
from slipstream.intake import Intake, MalformedBody, from_json, from_ndjson
from slipstream.registry import embedded_file, shown_url

CHUNK = 1000
BROKER_VARIABLE = "SLIPSTREAM_BROKER_URL"


class Outlet(BrokerLifecycle, Publisher, Described, Protocol):
    """The broker as publish uses it: opened, published to, closed."""


class BadFile(ValueError):
    """A file that holds no events to publish; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The file's events with their verdicts, and where each one sits in the file."""

    intake: Intake
    lines: list[int] | None  # NDJSON: the file's line number of each event; None for JSON

    def place(self, index: int) -> str:
        """`line 7` for NDJSON; the array index for a JSON array (the intake's index)."""
        return f"line {self.lines[index]}" if self.lines is not None else f"array index {index}"

    def rejections(self) -> list[str]:
        """One line per rejected event, naming its place in the file."""
        out = []
        for item in self.intake.rejected:
            place = self.place(item["index"])
            out.append(f"{place}: {str(item['error']).removeprefix(f'{place}: ')}")
        return out


def broker_location(settings: Settings) -> str:
    """Where the events will go, to print; a missing embedded queue is refused, not created.

    An embedded queue is a file named relative to the working directory by default: publish
    run elsewhere would make a new queue that no server reads, and its events would be lost.
    """
    queue = embedded_file(settings.broker_url, BROKER_VARIABLE, BROKERS)
    shown = shown_url(settings.broker_url)
    if queue is None:
        return shown
    if not queue.is_file():
        absolute = Path(urlsplit(settings.broker_url).path[1:]).is_absolute()
        relative = "" if absolute else ", relative to this directory"
        raise ConfigError(
            f"no queue at {queue} ({BROKER_VARIABLE}={shown}{relative}); publish does not "
            "create one, as no server would read it. Run publish from the server's directory, "
            f"or name the server's queue: {BROKER_VARIABLE}=local:////path/to/server/data/queue.db"
        )
    return f"{shown} ({queue})"


def event_lines(data: bytes) -> list[int]:
    """The line number of each NDJSON event: the intake counts non-blank lines from 0."""
    return [number for number, line in enumerate(data.split(b"\n"), 1) if line.strip()]


def parse_file(data: bytes, codec: EventCodec) -> Parsed:
    """A JSON array or object, or NDJSON; decided by the content, not the file name."""
    attributes = {"dataset": codec.dataset.name}
    if data.lstrip()[:1] == b"[":
        return Parsed(_from_json(data, codec, attributes), None)
    intake = from_ndjson(data, codec, attributes)
    if intake.accepted == 0 and len(intake.rejected) > 1:
        # Perhaps one pretty-printed JSON object spread over several lines.
        try:
            return Parsed(from_json(data, codec, attributes), None)
        except MalformedBody:
            pass
    if not intake.messages:
        raise BadFile("no events in it: it is empty or holds only blank lines")
    return Parsed(intake, event_lines(data))


def _from_json(data: bytes, codec: EventCodec, attributes: dict[str, str]) -> Intake:
    try:
        return from_json(data, codec, attributes)
    except MalformedBody:
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadFile(
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        raise


async def publish_file(settings: Settings, dataset_name: str, data: bytes) -> Parsed:
    catalog = load_catalog(settings.datasets)
    dataset = catalog.get(dataset_name)
    if dataset is None:
        raise ConfigError(f"no dataset named {dataset_name!r}; known: {', '.join(catalog.names)}")
    parsed = parse_file(data, EventCodec(dataset))
    messages = parsed.intake.messages
    broker: Outlet = create_broker(settings)
    await broker.open(catalog.names)
    try:
        for start in range(0, len(messages), CHUNK):
            try:
                chunk = messages[start : start + CHUNK]
                await broker.publish(
                    dataset.name, for_broker(chunk, broker.capabilities, settings.batch_size)
                )
            except MessageTooLarge as exc:
                raise MessageTooLarge(
                    f"{exc}; the {start} events before its batch of {CHUNK} were published, the"
                    " rest not: shrink that event and publish the file again (events with an id"
                    " are stored once however often they are sent)"
                ) from None
    finally:
        await broker.close()
    return parsed
