"""URL scheme → backend class, imported only when used so drivers stay optional extras."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slipstream.errors import ConfigError, MissingExtra


@dataclass(frozen=True)
class BackendEntry:
    target: str  # "module:Class"
    extra: str | None  # pip extra holding the driver; None when always installed
    example: str


def scheme_of(url: str, variable: str, entries: dict[str, BackendEntry]) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in entries:
        known = ", ".join(e.example for e in entries.values())
        raise ConfigError(f"{variable}={url!r}: unknown scheme {scheme!r}; use one of: {known}")
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
