"""What no store can keep, looked for in a decoded JSON value: U+0000 in a string or object key
(PostgreSQL text and jsonb refuse it) and objects or arrays nested deeper than MAX_DEPTH (orjson
writes no deeper, and the stores write JSON back with it).

Both are rare, and a walk through every value costs more than the rest of validation, so the raw
JSON text is scanned first and the value walked only when the text could hold one: JSON can write
U+0000 only as the escape `\\u0000` (raw control characters are invalid JSON), and most texts
have no backslash at all (one memchr); nesting N deep takes N opening brackets, and as many
closing ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NUL_ESCAPE, BACKSLASH = b"\\u0000", ord("\\")
MAX_DEPTH = 254  # containers nested in an event, the event counted: orjson.dumps' own limit
NUL_REFUSED = "U+0000 (NUL) is not allowed in text (PostgreSQL cannot store it); remove it"
TOO_DEEP = f"objects and arrays are nested more than {MAX_DEPTH} deep; flatten the event"


@dataclass(frozen=True, slots=True)
class Hints:
    """What the JSON text of an event may hold, so what validation must look for."""

    nul: bool
    deep: bool


# Made once: hints() runs for every event, and building an instance costs more than the scan.
_ALL = tuple(Hints(bool(i & 2), bool(i & 1)) for i in range(4))
NOTHING, EVERYTHING = _ALL[0], _ALL[3]


def hints(text: bytes) -> Hints:
    """What the JSON `text` of one event may hold. (Inline: it runs for every event.)"""
    nul = BACKSLASH in text and NUL_ESCAPE in text
    deep = len(text) > 2 * MAX_DEPTH and text.count(b"[") + text.count(b"{") > MAX_DEPTH
    return _ALL[nul << 1 | deep]


def document_hints(text: bytes) -> Hints:
    """What the events of a JSON document of many events may hold, nesting left out (a body of
    many events has many brackets; the caller sees a too deep event when writing it back)."""
    return _ALL[(BACKSLASH in text and NUL_ESCAPE in text) << 1]


def refusal(value: Any, look: Hints = EVERYTHING) -> str | None:
    """Why a decoded JSON value cannot be stored, naming the path, or None."""
    if not (look.nul or look.deep):
        return None
    stack: list[tuple[Any, str, int]] = [(value, "$", 1)]
    while stack:  # a loop, not recursion: the value may be nested a thousand deep
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if look.nul and "\x00" in item:
                return f"{NUL_REFUSED} - at {path}"
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"{TOO_DEEP} - at {path}"
            if isinstance(item, list):
                stack.extend((inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item))
                continue
            for key, inner in item.items():
                name = f"{path}.{key}".replace("\x00", "\\u0000")
                if look.nul and "\x00" in key:
                    return f"{NUL_REFUSED} - at {name} (the key)"
                stack.append((inner, name, depth + 1))
    return None
