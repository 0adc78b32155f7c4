"""`slipstream import`: files of events onto the broker a server reads, through the intake's
rules, so the worker validates, quarantines and writes them idempotently as it does live events.

An event without an id is named after its file's name, its place in it and its text (a UUIDv5),
and a refused one is keyed the same way: importing a file again, from anywhere, adds nothing
to the store or the quarantine. A checkpoint, when asked for, records after each publish how
many events of each file are on the broker, so a run cut short resumes where it stopped; it
is tied to the file's size and modification time, and a changed file starts over (which the
ids make harmless).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

from slipstream.brokers import Backlog, Outgoing
from slipstream.bundles import for_broker
from slipstream.config import Settings
from slipstream.datasets import Dataset, load_catalog
from slipstream.errors import ConfigError, MessageTooLarge
from slipstream.events import EventCodec
from slipstream.intake import from_records
from slipstream.publish import Outlet
from slipstream.transfer import readers
from slipstream.transfer.sources import Source

NAMESPACE = uuid.UUID("6f1c2a52-9a43-4d5e-9a0e-5c1b8d7f3e21")  # ids of imported events
CHUNK_EVENTS = 1000  # events validated and published at once
SHOWN = 10  # refusals kept to print; the rest are counted, and quarantined with their reasons
BACKLOG_POLL = 0.02  # seconds between looks at the backlog while it is over the bound


class Destination(Outlet, Backlog, Protocol):
    """The broker as an import uses it: opened, published to, its backlog watched."""


@dataclass
class Tally:
    files: int = 0
    read: int = 0  # events read from the files this run (skipped ones not counted)
    accepted: int = 0
    refused: int = 0  # sent on to the quarantine, with their reasons
    skipped: int = 0  # on the broker already, by the checkpoint
    left_out: list[str] = field(default_factory=list)  # too large for the broker, each named
    finished_bytes: int = 0  # sizes of the files before the one being read, for the progress
    refusals: list[str] = field(default_factory=list)


class Checkpoint:
    """Events of each file already on the broker, kept in a JSON file (none: nothing kept)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._done: dict[str, int] = {}
        if path is not None and path.exists():
            try:
                self._done = {str(k): int(v) for k, v in orjson.loads(path.read_bytes()).items()}
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                raise ConfigError(
                    f"--checkpoint {path}: not a checkpoint this command wrote; remove it or "
                    "name another file"
                ) from None

    @staticmethod
    def _key(source: Source) -> str:
        return f"{source.uri}|{source.size}|{source.changed}"

    def done(self, source: Source) -> int:
        return self._done.get(self._key(source), 0)

    def advance(self, source: Source, events: int) -> None:
        if self.path is None:
            return
        self._done[self._key(source)] = events
        handle, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(orjson.dumps(self._done, option=orjson.OPT_INDENT_2))
        os.replace(partial, self.path)  # whole or not at all, even when killed mid-write


def event_name(place: str, text: bytes) -> str:
    """The id of an event without one (and the key of a refused one), from where it sits."""
    return str(uuid.uuid5(NAMESPACE, place + "\n" + text.decode("utf-8", errors="replace")))


class Importer:
    def __init__(
        self,
        settings: Settings,
        dataset_name: str,
        checkpoint: Checkpoint,
        max_backlog: int,
        on_progress: Callable[[Tally, readers.Reading], None] = lambda tally, reading: None,
    ) -> None:
        catalog = load_catalog(settings.datasets)
        dataset = catalog.get(dataset_name)
        if dataset is None:
            known = ", ".join(catalog.names)
            raise ConfigError(f"no dataset named {dataset_name!r}; known: {known}")
        self.dataset: Dataset = dataset
        self.codec = EventCodec(dataset)
        self.settings = settings
        self.checkpoint = checkpoint
        self.on_progress = on_progress
        self.max_backlog = max_backlog
        self.tally = Tally()
        self._attributes = {"dataset": dataset.name}

    async def run(self, files: Iterable[Source], broker: Destination) -> Tally:
        """Every event of `files` onto `broker` (opened), file by file, in order."""
        for file in files:
            await self._file(file, broker)
            self.tally.files += 1
        return self.tally

    async def _file(self, file: Source, broker: Destination) -> None:
        skip = self.checkpoint.done(file)
        self.tally.skipped += skip
        batch: list[tuple[str, bytes]] = []
        count = 0
        reading = readers.Reading(file, self.dataset)
        for place, text in reading.records():
            count += 1
            if count <= skip:
                continue
            batch.append((f"{file.name} {place}", text))
            if len(batch) == CHUNK_EVENTS:
                await self._send(batch, broker)
                self.checkpoint.advance(file, count)
                self.on_progress(self.tally, reading)
                batch = []
        if batch:
            await self._send(batch, broker)
        self.checkpoint.advance(file, count)
        self.on_progress(self.tally, reading)
        self.tally.finished_bytes += reading.size

    async def _make_room(self, broker: Destination) -> None:
        """Wait while the dataset's backlog is over `max_backlog`: live events queue behind
        what an import has published, so an import held to a small backlog keeps them fresh
        (and the API's admission by freshness open to them)."""
        if not broker.capabilities.counts_backlog:
            return
        while True:  # the backlog drains in the worker's process: looked at, not awaited
            if await broker.backlog(self.dataset.name) <= self.max_backlog:
                return
            await asyncio.sleep(BACKLOG_POLL)

    async def _send(self, batch: list[tuple[str, bytes]], broker: Destination) -> None:
        await self._make_room(broker)
        intake = from_records(batch, self.codec, self._attributes, event_name)
        messages = for_broker(intake.messages, broker.capabilities, self.settings.batch_size)
        left_out: set[int] = set()
        try:
            await broker.publish(self.dataset.name, messages)
        except MessageTooLarge:  # one event or more over the broker's largest message
            left_out = await self._one_by_one(batch, intake.messages, broker)
        self.tally.read += len(batch)
        refused = {item["index"] for item in intake.rejected}
        self.tally.accepted += len(batch) - len(refused | left_out)
        self.tally.refused += len(refused - left_out)
        room = SHOWN - len(self.tally.refusals)
        for item in [i for i in intake.rejected if i["index"] not in left_out][: max(room, 0)]:
            self.tally.refusals.append(f"{batch[item['index']][0]}: {item['error']}")

    async def _one_by_one(
        self, batch: list[tuple[str, bytes]], messages: list[Outgoing], broker: Destination
    ) -> set[int]:
        """Publish the chunk's events alone (one per record, in order); answer those the
        broker refuses as too large, which are left out and named (the others, published again
        where a bundle had gone through, are stored once)."""
        left_out: set[int] = set()
        for index, message in enumerate(messages):
            try:
                await broker.publish(self.dataset.name, [message])
            except MessageTooLarge as exc:
                left_out.add(index)
                self.tally.left_out.append(f"{batch[index][0]}: not imported: {exc}")
        return left_out
