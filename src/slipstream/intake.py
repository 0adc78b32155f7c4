"""From a request body (JSON or NDJSON) to messages ready to publish, with per-event verdicts.

Invalid events are published too, under a fresh key: the worker quarantines them with their
reason, so every byte a producer sent is accounted for — stored or quarantined — while the
producer is told at once which indexes were rejected and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from slipstream.brokers import Outgoing
from slipstream.events import PLACE_ATTRIBUTE, EventCodec, InvalidEvent, new_event_id
from slipstream.storable import TOO_DEEP, Hints, document_hints, hints


class MalformedBody(ValueError):
    """A JSON document that does not parse; the message names line and column."""


@dataclass(slots=True)
class Intake:
    messages: list[Outgoing] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Naming:
    """How refused events and events without an id are sent: by default under fresh ids with
    the request's attributes; an import names them after their place in the file instead."""

    make_id: Callable[[], str] = new_event_id
    refused: dict[str, str] | None = None  # attributes of a refused event, when not the request's


FRESH = Naming()


def _take(
    intake: Intake,
    codec: EventCodec,
    index: int,
    event: Any,
    raw: bytes | None,
    attributes: dict[str, str],
    look: Hints,
    naming: Naming = FRESH,
) -> None:
    try:
        codec.validate(event, look)
    except InvalidEvent as exc:
        _reject(intake, index, str(exc), raw, event, attributes, naming)
        return
    event_id = codec.event_id(event)
    if event_id is None:
        event_id = naming.make_id()
        event[codec.key] = event_id
        raw = None  # the stored event must carry the id it was given
    try:
        data = raw if raw is not None else orjson.dumps(event)
    except orjson.JSONEncodeError:  # nested past what orjson writes: the document's hints
        _reject(intake, index, TOO_DEEP, raw, event, attributes, naming)  # nesting unchecked
        return
    intake.ids.append(event_id)
    intake.messages.append(Outgoing(event_id, data, attributes))


def _reject(
    intake: Intake,
    index: int,
    reason: str,
    raw: bytes | None,
    event: Any,
    attributes: dict[str, str],
    naming: Naming = FRESH,
) -> None:
    """Quarantine the event (through the broker, under a key of its own) and tell the producer."""
    intake.rejected.append({"index": index, "error": reason})
    data = raw if raw is not None else _written(event)
    intake.messages.append(Outgoing(naming.make_id(), data, naming.refused or attributes))


def _written(event: Any) -> bytes:
    """A refused event as JSON text for its quarantine row, however deeply it is nested."""
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError:  # past orjson's depth; the standard library goes further
        try:
            return json.dumps(event, ensure_ascii=False).encode()
        except RecursionError:
            return orjson.dumps({"refused": TOO_DEEP, "kept": "nothing: too deep to write"})


def from_event(
    event: Any, text: bytes, codec: EventCodec, attributes: dict[str, str], *, changed: bool
) -> Intake:
    """One decoded event and the JSON text it came from (a pushed message's payload), whatever
    its shape: a JSON array there is one event, an invalid one. `changed`: the caller has set
    something in `event` (its id), so the text is written again rather than sent as it came."""
    intake = Intake()
    _take(intake, codec, 0, event, None if changed else text, attributes, hints(text))
    return intake


def from_ndjson(body: bytes, codec: EventCodec, attributes: dict[str, str]) -> Intake:
    """One event per line; CRLF and blank lines are fine; a bad line never spoils the others.

    `index` counts events (non-blank lines) from 0; the error names the line number.
    """
    intake = Intake()
    numbered = [(n, line) for n, text in enumerate(body.split(b"\n"), 1) if (line := text.strip())]
    structs = codec.exact_lines(body, len(numbered))
    for index, (number, line) in enumerate(numbered):
        struct = structs[index] if structs is not None else codec.exact(line)
        if struct is not None and (event_id := codec.exact_id(struct)) is not None:
            intake.ids.append(event_id)  # valid, with its id: sent as it came
            intake.messages.append(Outgoing(event_id, line, attributes))
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            intake.rejected.append(
                {"index": index, "error": f"line {number}: not valid JSON: {exc}"}
            )
            intake.messages.append(Outgoing(new_event_id(), line, attributes))
        else:
            _take(intake, codec, index, event, line, attributes, hints(line))
    return intake


def from_records(
    records: Sequence[tuple[str, bytes]],
    codec: EventCodec,
    attributes: dict[str, str],
    name: Callable[[str, bytes], str],
) -> Intake:
    """Events of a file being imported, each the JSON text of one event (no line break in it)
    with its place in the file (`orders.ndjson line 7`): the intake's rules, except that an id
    is made by `name(place, text)` rather than at random, so that an import run twice adds
    nothing, and a refused event carries its place (PLACE_ATTRIBUTE) to its quarantine reason."""
    intake = Intake()
    structs = codec.exact_lines(b"\n".join(data for _, data in records), len(records))
    for index, (place, data) in enumerate(records):
        struct = structs[index] if structs is not None else codec.exact(data)
        if struct is not None and (event_id := codec.exact_id(struct)) is not None:
            intake.ids.append(event_id)
            intake.messages.append(Outgoing(event_id, data, attributes))
            continue
        naming = Naming(partial(name, place, data), {**attributes, PLACE_ATTRIBUTE: place})
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            intake.rejected.append({"index": index, "error": f"not valid JSON: {exc}"})
            intake.messages.append(Outgoing(naming.make_id(), data, naming.refused or attributes))
            continue
        _take(intake, codec, index, event, data, attributes, hints(data), naming)
    return intake


def from_json(body: bytes, codec: EventCodec, attributes: dict[str, str]) -> Intake:
    """A JSON object (one event) or array (events); a document that fails to parse is refused."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(offset {exc.pos}); send one JSON object, a JSON array, or NDJSON with "
            "Content-Type: application/x-ndjson"
        ) from None
    intake = Intake()
    events = document if isinstance(document, list) else [document]
    # Scanned once for the whole body; an event nested too deep shows when it is written back.
    look = document_hints(body)
    for index, event in enumerate(events):
        _take(intake, codec, index, event, None, attributes, look)
    return intake
