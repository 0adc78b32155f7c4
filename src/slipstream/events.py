"""Turning raw event bytes into validated rows: one compiled validator per dataset.

The same codec serves the API (to answer a producer at once) and the worker (which must check
again: producers may publish straight onto the broker).

Validation refuses what some store could not keep, the same whatever the store, so that no event
is accepted and then refused at the write: U+0000 in any string or object key and nesting too
deep (storable.py), a time outside years 1-9999 once in UTC (Python, BigQuery), an event id that
is empty or longer than MAX_ID_LENGTH characters (a PostgreSQL index entry, a Pub/Sub attribute).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
import uuid_utils

from slipstream.datasets import Dataset, FieldSpec
from slipstream.storable import EVERYTHING, NOTHING, Hints, document_hints, hints, refusal

# Columns the store keeps after the declared fields, in this order.
EXTRA_COLUMN = "extra"
RECEIVED_COLUMN = "_received_at"
# Ids of synthetic probe events (`slipstream probe`): stored and readable by id, but left out of
# lists, stats and row counts. Stores write it into SQL as a literal, so it stays letters and "-".
PROBE_ID_PREFIX = "probe-"
# The keys the API's lists, stats and counts leave out: the probe's.
HIDDEN_KEY_PREFIX = PROBE_ID_PREFIX
_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
MAX_ID_LENGTH = 256  # characters: at most 1 KiB of UTF-8
_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
EDGE_YEARS = (1, 9999)


# The place in a file an imported event came from (`orders.ndjson line 7`), sent beside a refused
# one: its quarantine reason starts with it. Bounded, as any producer may set it.
PLACE_ATTRIBUTE = "place"
MAX_PLACE = 300


def new_event_id() -> str:
    """A time-ordered id (UUIDv7), so ids sort roughly by arrival."""
    return str(uuid_utils.uuid7())


def _python_type(spec: FieldSpec, is_key: bool) -> Any:
    base: Any
    match spec.type:
        case "string":
            base = _ID if is_key else str
        case "int":
            base = _INT64
        case "float":
            base = float
        case "bool":
            base = bool
        case "timestamp":
            base = datetime
        case "enum":
            base = Literal[spec.values]
        case "json":
            base = Any
    return base


class InvalidEvent(ValueError):
    """An event that does not match its dataset's schema; the message names the field path."""


@dataclass(slots=True)
class EventRows:
    """Valid events of one batch, as rows in `columns` order, ready for one store write."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(slots=True, frozen=True)
class Rejected:
    """An event that cannot be stored: kept with its reason, never retried."""

    key: str
    reason: str
    raw: bytes
    received_at: datetime


class EventCodec:
    """Validator for one dataset, compiled once to a msgspec Struct."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        struct_fields: list[Any] = []
        for spec in dataset.fields:
            kind = _python_type(spec, spec.name == dataset.key)
            if spec.required:
                struct_fields.append((spec.name, kind))
            else:
                struct_fields.append((spec.name, kind | None, None))
        self._struct: type[msgspec.Struct] = msgspec.defstruct(
            f"{dataset.name}_event", struct_fields, kw_only=True
        )
        # The same fields, refusing any other: an event whose text decodes straight into it is
        # valid as it stands, with no dict made and no second pass (`exact`); any other event
        # goes the whole way (`validate`), which keeps its other fields or words its refusal.
        self._exact = msgspec.json.Decoder(
            msgspec.defstruct(
                f"{dataset.name}_exact", struct_fields, kw_only=True, forbid_unknown_fields=True
            )
        )
        self.known = frozenset(dataset.field_names)
        self.key = dataset.key
        self.columns = (*dataset.field_names, EXTRA_COLUMN, RECEIVED_COLUMN)
        names = dataset.field_names
        self._timestamps = tuple(i for i, f in enumerate(dataset.fields) if f.type == "timestamp")
        self._timestamp_names = tuple(names[i] for i in self._timestamps)
        self._json = tuple(i for i, f in enumerate(dataset.fields) if f.type == "json")
        self._key_index = names.index(dataset.key)
        self._needs_fixing = bool(self._timestamps or self._json)

    def validate(self, event: Any, look: Hints = EVERYTHING) -> msgspec.Struct:
        """Check one decoded JSON value; raise InvalidEvent naming the field path.

        `look`: what its JSON text may hold (`storable.hints`), all of it when unknown."""
        if not isinstance(event, dict):
            raise InvalidEvent(f"expected a JSON object, got {type(event).__name__}")
        try:
            struct = msgspec.convert(event, self._struct)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(str(exc).replace("`", "")) from None
        if look is not NOTHING and (why := refusal(event, look)) is not None:
            raise InvalidEvent(why)
        for name in self._timestamp_names:
            stamp = getattr(struct, name)
            # Only a time on the first or last day of the calendar can leave it once in UTC.
            if stamp is not None and stamp.year in EDGE_YEARS:
                _check_utc(name, stamp)
        return struct

    def exact(self, data: bytes) -> msgspec.Struct | None:
        """The event of JSON text `data`, decoded and checked in one step, when it holds the
        schema's fields and no other, and nothing `storable.hints` would have looked at closer;
        None when the event must go the whole way (`validate`), valid or not."""
        if hints(data) is not NOTHING:
            return None
        try:
            struct = self._exact.decode(data)
        except msgspec.DecodeError:  # ValidationError too: the whole way words the reason
            return None
        for name in self._timestamp_names:
            stamp = getattr(struct, name)
            if stamp is not None and stamp.year in EDGE_YEARS:
                return None
        return struct

    def exact_lines(self, text: bytes, lines: int) -> list[msgspec.Struct] | None:
        """The events of NDJSON `text`, which holds `lines` non-blank lines, decoded and checked
        in one call when each line would pass `exact`; None when any would not (each line then
        goes its own way). One call saves most of the per-line cost of `exact` for a body or a
        bundle of many events (docs/performance.md).

        A dataset with `json` fields is left to `exact`: only those can nest deep enough to need
        `hints`' closer look. As many values as lines means one per line: a line holding two
        would need another to hold none, and a non-blank line without a value does not decode."""
        if self._json or document_hints(text) is not NOTHING:
            return None
        try:
            structs: list[msgspec.Struct] = self._exact.decode_lines(text)
        except msgspec.DecodeError:
            return None
        if len(structs) != lines:
            return None
        for name in self._timestamp_names:
            for struct in structs:
                stamp = getattr(struct, name)
                if stamp is not None and stamp.year in EDGE_YEARS:
                    return None
        return structs

    def exact_id(self, struct: msgspec.Struct) -> str | None:
        """The id of an event `exact` decoded, None when it has none."""
        value: str | None = getattr(struct, self.key)
        return value

    def row(
        self, event: dict[str, Any], key: str, received_at: datetime, look: Hints = EVERYTHING
    ) -> tuple[Any, ...]:
        """Validate `event` and return its store row; `key` fills a missing event id."""
        struct = self.validate(event, look)
        unknown = event.keys() - self.known
        extra = orjson.dumps({k: event[k] for k in unknown}).decode() if unknown else None
        return self._row(struct, key, received_at, extra)

    def _row(
        self, struct: msgspec.Struct, key: str, received_at: datetime, extra: str | None
    ) -> tuple[Any, ...]:
        """The store row of a valid event: `key` fills a missing event id."""
        values = list(msgspec.structs.astuple(struct))
        if values[self._key_index] is None:
            if not usable_id(key):
                raise InvalidEvent(
                    f"the event has no {self.key} and its message key cannot be one (U+0000, or"
                    f" over {MAX_ID_LENGTH} characters); send the event with an {self.key}"
                )
            values[self._key_index] = key
        if self._needs_fixing:
            for i in self._timestamps:
                stamp = values[i]
                if stamp is not None and stamp.tzinfo is None:
                    values[i] = stamp.replace(tzinfo=UTC)
            for i in self._json:
                if values[i] is not None:
                    values[i] = orjson.dumps(values[i]).decode()
        values.append(extra)
        values.append(received_at)
        return tuple(values)

    def decode(
        self,
        messages: list[tuple[str, bytes, datetime]],
        texts: Sequence[tuple[int, bytes]] = (),
    ) -> tuple[EventRows, list[tuple[int, Rejected]]]:
        """Decode (key, data, received_at) triples; return the valid rows and the rejected ones.

        `texts`, when given: the NDJSON text each run of consecutive messages came in (a bundle)
        and how many it holds, in order, covering them all; a run is decoded in one call where
        it can be (`exact_lines`).

        Rejected entries carry the index of their message, so a caller can tell which of its
        messages produced rows and which were quarantined.
        """
        rows = EventRows(self.columns)
        rejected: list[tuple[int, Rejected]] = []
        decoded: list[msgspec.Struct | None] = []
        for count, text in texts:
            found = self.exact_lines(text, count) if count > 1 else None
            decoded.extend([None] * count if found is None else found)
        for index, (key, data, received_at) in enumerate(messages):
            try:
                struct = decoded[index] if decoded else None
                if struct is None:
                    struct = self.exact(data)
                if struct is not None:
                    rows.rows.append(self._row(struct, key, received_at, None))
                    continue
                event = orjson.loads(data)
                rows.rows.append(self.row(event, key, received_at, hints(data)))
            except orjson.JSONDecodeError as exc:
                rejected.append((index, Rejected(key, f"not valid JSON: {exc}", data, received_at)))
            except InvalidEvent as exc:
                rejected.append((index, Rejected(key, str(exc), data, received_at)))
        return rows, rejected

    def event_id(self, event: dict[str, Any]) -> str | None:
        value = event.get(self.key)
        return value if isinstance(value, str) else None

    def id_in(self, data: bytes) -> str | None:
        """The id an event's JSON text holds, if it parses to an object with a usable one."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        value = self.event_id(event) if isinstance(event, dict) else None
        return value if value and usable_id(value) else None


def usable_id(value: str) -> bool:
    """Whether a text can be an event id every store indexes (no U+0000, not too long)."""
    return "\x00" not in value and len(value) <= MAX_ID_LENGTH


def _check_utc(name: str, stamp: datetime) -> None:
    if stamp.tzinfo is None:  # read as UTC
        return
    try:
        stamp.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(
            f"{stamp.isoformat()} is outside years 1-9999 once converted to UTC; send a time"
            f" between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z - at $.{name}"
        ) from None


def now_utc() -> datetime:
    return datetime.now(UTC)
