"""URL scheme → backend class, imported only when used so drivers stay optional extras."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slipstream.config import path_from_url
from slipstream.errors import ConfigError, MissingExtra


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
    """The backend class for `url`; its `from_url(url, settings)` builds the instance."""
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


def shown_url(url: str) -> str:
    """The URL fit to print: a password masked, and a user part without one too (for NATS
    that is a token). A URL too malformed to parse loses everything up to its last `@`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or "@" not in parts.netloc:
        return f"***@{url.rpartition('@')[2]}" if "@" in url else url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return parts._replace(netloc=f"{user}:***@{host}" if colon else f"***@{host}").geturl()
