"""URL scheme → backend class, imported only when used so drivers stay optional extras.

Also what brokers and stores have in common: the one role both play (`Reachable`), and how
their URLs are shown in messages (`shown_url`, passwords masked).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from slipstream.config import path_from_url
from slipstream.errors import ConfigError, MissingExtra


class Reachable(Protocol):
    """A broker or store that can say whether it answers (readiness, the worker's recovery)."""

    async def ping(self) -> None:
        """Return when reachable; raise BackendUnavailable otherwise."""


@dataclass(frozen=True)
class BackendEntry:
    target: str  # "module:Class"
    extra: str | None  # pip extra holding the driver; None when always installed
    example: str
    # Keeps its data in one file named by the URL's path, relative to the working directory
    # unless absolute: a process started elsewhere finds another file, or makes a new one.
    embedded: bool = False


def scheme_of(url: str, variable: str, entries: dict[str, BackendEntry]) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in entries:
        known = ", ".join(e.example for e in entries.values())
        raise ConfigError(
            f"{variable}={shown_url(url)!r}: unknown scheme {scheme!r}; use one of: {known}"
        )
    return scheme


def load_backend(url: str, variable: str, entries: dict[str, BackendEntry]) -> Any:
    """The backend class for `url`; its `from_url(url, settings)` builds the instance from the
    URL and the few settings every backend of its kind takes (`BrokerSettings`, `StoreSettings`)."""
    scheme = scheme_of(url, variable, entries)
    entry = entries[scheme]
    module_name, class_name = entry.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if entry.extra is None:
            raise
        raise MissingExtra(scheme, entry.extra) from exc
    return getattr(module, class_name)


def embedded_file(url: str, variable: str, entries: dict[str, BackendEntry]) -> Path | None:
    """The file an embedded backend keeps its data in, resolved; None for a server backend
    or an in-memory database."""
    scheme = scheme_of(url, variable, entries)
    if not entries[scheme].embedded or urlsplit(url).path.lstrip("/") == ":memory:":
        return None
    try:
        return path_from_url(url.split("?", 1)[0])  # the query holds options, not the path
    except ConfigError as exc:
        raise ConfigError(f"{variable}={exc}") from None


# A query option whose name says it holds a secret (libpq's `password`, `sslpassword`,
# `scram_client_key`…).
_SECRET_OPTION = re.compile(
    r"(^|&)([^=&]*(?:password|secret|token|key)[^=&]*)=[^&]*", re.IGNORECASE
)


def shown_url(url: str) -> str:
    """The URL fit to print: a password masked, and a user part without one too (for NATS
    that is a token), and the value of a query option named for a secret. A URL too malformed
    to parse loses everything up to its last `@`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or "@" not in parts.netloc:
        if "@" in url:
            url = f"***@{url.rpartition('@')[2]}"
        head, mark, query = url.partition("?")
        return head + mark + _SECRET_OPTION.sub(r"\1\2=***", query)
    parts = parts._replace(query=_SECRET_OPTION.sub(r"\1\2=***", parts.query))
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return parts._replace(netloc=f"{user}:***@{host}" if colon else f"***@{host}").geturl()
