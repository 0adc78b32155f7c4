"""Log lines: one JSON object per record for log pipelines, or readable text on a terminal.

Every line carries the request id and trace id of the work in hand (from context variables the
HTTP middleware sets), and any structured fields passed with `extra=`.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from slipstream.config import Settings

request_id: ContextVar[str | None] = ContextVar("slipstream_request_id", default=None)
trace_id: ContextVar[str | None] = ContextVar("slipstream_trace_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "taskName", "color_message"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if (rid := request_id.get()) is not None:
        fields["request_id"] = rid
    if (tid := trace_id.get()) is not None:
        fields["trace_id"] = tid
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value  # a field passed explicitly wins over the context's
    return fields


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", …fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # orjson escapes newlines inside strings, so a traceback stays on its line.
        try:
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int past 64 bits: a line with its text beats losing it
            return orjson.dumps({key: _plain(value) for key, value in line.items()}).decode()


def _plain(value: Any) -> Any:
    if (isinstance(value, int) and -(2**63) <= value < 2**64) or isinstance(value, str | float):
        return value
    return None if value is None else str(value)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value …` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if not fields:
            return text
        head, newline, rest = text.partition("\n")  # fields before any traceback
        pairs = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return f"{head} {pairs}{newline}{rest}"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(map(str, value))
    text = str(value)
    return repr(text) if not text or any(c.isspace() for c in text) else text


def resolve_format(setting: str, stream: TextIO) -> str:
    """`auto`: text when a person is watching (a terminal), JSON when a program reads it."""
    if setting != "auto":
        return setting
    return "text" if stream.isatty() else "json"


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Send every logger (uvicorn's included, they propagate here) to one handler on stderr."""
    stream = stream if stream is not None else sys.stderr
    kind = resolve_format(settings.log_format, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if kind == "json" else TextFormatter())
    handler.set_name("slipstream")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "slipstream"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
