"""Small pieces of PromQL text: quoted strings, label matchers, exact numbers."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

_REGEX_SYNTAX = frozenset(".^$*+?{}[]\\|()")


def string(value: str) -> str:
    """A PromQL string literal; a regex's backslashes must be doubled to survive the quotes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def matchers(labels: Iterable[tuple[str, str]], exact: Iterable[tuple[str, str]] = ()) -> str:
    """`{a="x", b=~"y.*", le="0.1"}` from (label, regex) pairs, then (label, value) pairs matched
    exactly; a regex without regex syntax gets `=` for readability."""
    parts = []
    for label, regex in labels:
        op = "=~" if any(c in _REGEX_SYNTAX for c in regex) else "="
        parts.append(f"{label}{op}{string(regex)}")
    parts += [f"{label}={string(value)}" for label, value in exact]
    return "{" + ", ".join(parts) + "}" if parts else ""


def number(value: Decimal) -> str:
    """0.0144 rather than 1.44E-2 or 0.014400000000000001."""
    return format(value.normalize(), "f")


def by(labels: Iterable[str]) -> str:
    """The aggregation clause: `sum by (a, b) ` or plain `sum` when nothing is kept."""
    kept = list(labels)
    return f"sum by ({', '.join(kept)}) " if kept else "sum "
