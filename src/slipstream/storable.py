"""What no store can keep, looked for in a decoded JSON value: U+0000 in a string or object key
(PostgreSQL text and jsonb refuse it) and objects or arrays nested deeper than MAX_DEPTH (orjson
writes no deeper, and the stores write JSON back with it).

Both are rare and a walk through every value costs more than the rest of validation, so the raw
JSON text is scanned first (C-speed byte searches) and the value walked only when the text could
hold one: JSON can write U+0000 only as the escape `\\u0000` (raw control characters are invalid
JSON), and nesting N deep takes at least N brackets.
"""

from __future__ import annotations

from typing import Any, NamedTuple

NUL_ESCAPE = b"\\u0000"
MAX_DEPTH = 254  # containers nested in an event, the event counted: orjson.dumps' own limit
NUL_REFUSED = "U+0000 (NUL) is not allowed in text (PostgreSQL cannot store it); remove it"
TOO_DEEP = f"objects and arrays are nested more than {MAX_DEPTH} deep; flatten the event"


class Hints(NamedTuple):
    """What a walk must look for, as far as the raw text tells."""

    nul: bool
    deep: bool


EVERYTHING, NOTHING = Hints(True, True), Hints(False, False)


def hints(text: bytes) -> Hints:
    """What the JSON `text` of one event (or of a document of events) may hold."""
    return Hints(NUL_ESCAPE in text, text.count(b"[") + text.count(b"{") > MAX_DEPTH)


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
