"""A probe event for any dataset, and the comparison of what was sent with what came back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import PROBE_ID_PREFIX, new_event_id


def probe_id() -> str:
    """`probe-<uuid7>`: the prefix keeps the event out of lists, stats and row counts."""
    return f"{PROBE_ID_PREFIX}{new_event_id()}"


def build_event(dataset: Dataset, event_id: str, now: datetime, n: int) -> dict[str, Any]:
    """Every declared field filled, optional ones too, so the round trip checks each column.

    `n` varies the values from run to run, so a store answering with another run's row is
    caught. Times are sent to the millisecond, the precision every store keeps.
    """
    stamp = now.astimezone(UTC).isoformat(timespec="milliseconds")
    event: dict[str, Any] = {}
    for spec in dataset.fields:
        if spec.name == dataset.key:
            event[spec.name] = event_id
        elif spec.type == "timestamp":
            event[spec.name] = stamp
        else:
            event[spec.name] = _value(spec, event_id, n)
    return event


def _value(spec: FieldSpec, event_id: str, n: int) -> Any:
    match spec.type:
        case "string":
            return event_id
        case "int":
            return n
        case "float":
            return n + 0.5  # exact in binary, so equality holds after any store
        case "bool":
            return n % 2 == 0
        case "enum":
            return spec.values[n % len(spec.values)]
        case "json":
            return {"probe": event_id, "n": n, "list": [1, "two", None], "ok": True}
    raise ValueError(f"field {spec.name!r} has type {spec.type!r}, which the probe cannot fill")


def differences(dataset: Dataset, sent: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """One line per field whose read-back value is not the value sent."""
    found = []
    for spec in dataset.fields:
        if spec.name not in sent:
            continue
        if spec.name not in got:
            found.append(f"field {spec.name!r} is missing from the event read back")
        elif not same(spec, sent[spec.name], got[spec.name]):
            found.append(
                f"field {spec.name!r}: sent {sent[spec.name]!r}, read back {got[spec.name]!r}"
            )
    return found


def same(spec: FieldSpec, sent: Any, got: Any) -> bool:
    """Equal as values of the field's type: timestamps as instants, numbers as numbers."""
    if sent is None or got is None:
        return sent is None and got is None
    match spec.type:
        case "timestamp":
            return _instant(sent) is not None and _instant(sent) == _instant(got)
        case "int":
            return _is_number(got) and isinstance(got, int) and got == sent
        case "float":
            return _is_number(got) and float(got) == float(sent)
        case "bool":
            return isinstance(got, bool) and got == sent
        case _:
            return bool(type(got) is type(sent) and got == sent)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
