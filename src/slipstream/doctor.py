"""`slipstream check`: every setting, the datasets file, the reach of broker and store, and the
server answering at SLIPSTREAM_HOST:SLIPSTREAM_PORT, if any.

Check creates nothing: an embedded file that does not exist yet is reported, not made (made here,
in the wrong directory, it would be a queue that `publish` then feeds and no server reads).
Beside a running `slipstream up`, DuckDB's file is locked by the server (DuckDB refuses even a
read-only open then); the server's own /readyz answers for it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from slipstream.brokers import BROKERS, BrokerLifecycle, create_broker
from slipstream.config import Settings, load_settings
from slipstream.datasets import Catalog, DatasetError, load_catalog
from slipstream.errors import ConfigError
from slipstream.registry import BackendEntry, embedded_file, load_backend, shown_url
from slipstream.stores import STORES, StoreLifecycle, create_store

# Longer than the backends' own connect timeouts (NATS and PostgreSQL: 5 s), so a backend that
# cannot be reached says why itself rather than being cut short here.
TIMEOUT = 8.0
SERVER_TIMEOUT = 2.0
# DuckDB's words when another process holds the database file, and the holder it names.
_LOCKED = "Could not set lock on file"
_HOLDER = re.compile(r"\(PID (\d+)\)")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    state: Literal["ok", "FAILED", "--"]  # "--": nothing to judge (no server running, say)
    detail: str

    @property
    def failed(self) -> bool:
        return self.state == "FAILED"


@dataclass(frozen=True, slots=True)
class Server:
    """What answers at the configured address: `/readyz`'s fields, or None and why not."""

    url: str
    ready: dict[str, str] | None
    problem: str = ""


async def run_checks() -> list[Check]:
    try:
        settings = load_settings()
    except ConfigError as exc:
        return [Check("settings", "FAILED", str(exc))]
    keys = settings.key_scopes()
    checks = [Check("settings", "ok", f"{len(keys)} API keys" if keys else "no API keys: OPEN")]
    try:
        catalog = load_catalog(settings.datasets)
    except DatasetError as exc:
        return [*checks, Check("datasets", "FAILED", str(exc))]
    checks.append(Check("datasets", "ok", f"{', '.join(catalog.names)} from {catalog.source}"))
    server = await ask_server(settings)
    checks += [
        await _check_broker(settings, catalog, server),
        await _check_store(settings, catalog, server),
        _server_check(server),
    ]
    return checks


async def _check_broker(settings: Settings, catalog: Catalog, server: Server) -> Check:
    def reach() -> Awaitable[None]:
        broker: BrokerLifecycle = create_broker(settings)
        return _reach(broker, broker.open(catalog.names))

    url, variable = settings.broker_url, "SLIPSTREAM_BROKER_URL"
    return await _check_backend("broker", url, variable, BROKERS, reach, server)


async def _check_store(settings: Settings, catalog: Catalog, server: Server) -> Check:
    def reach() -> Awaitable[None]:
        store: StoreLifecycle = create_store(settings)
        return _reach(store, store.open(list(catalog)))

    url, variable = settings.store_url, "SLIPSTREAM_STORE_URL"
    return await _check_backend("store", url, variable, STORES, reach, server)


async def _check_backend(
    role: str,
    url: str,
    variable: str,
    entries: dict[str, BackendEntry],
    reach: Callable[[], Awaitable[None]],
    server: Server,
) -> Check:
    try:
        path = embedded_file(url, variable, entries)
        load_backend(url, variable, entries)  # an unknown scheme, or a driver not installed
    except ConfigError as exc:
        return Check(role, "FAILED", str(exc))
    shown = shown_url(url) + (f" ({path})" if path is not None else "")
    if path is not None and not path.exists():
        return _not_created(role, shown, path)
    try:
        await reach()
    except TimeoutError:
        return Check(role, "FAILED", f"{shown}: no answer within {TIMEOUT:.0f}s")
    except ConfigError as exc:  # a URL the backend cannot use; the message names it
        return Check(role, "FAILED", str(exc))
    except Exception as exc:  # every failure is reported, none is fatal to the report
        if _LOCKED in str(exc):
            return _held(role, shown, str(exc), server)
        return Check(role, "FAILED", f"{shown}: {exc}")
    return Check(role, "ok", shown)


async def _reach(backend: BrokerLifecycle | StoreLifecycle, opening: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(opening, TIMEOUT)
        await asyncio.wait_for(backend.ping(), TIMEOUT)
    finally:
        with contextlib.suppress(Exception):  # the failure that matters is already raised
            await asyncio.wait_for(backend.close(), TIMEOUT)


def _not_created(role: str, shown: str, path: Path) -> Check:
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return Check(role, "FAILED", f"{shown}: cannot be created: {parent} is not writable")
    return Check(role, "ok", f"{shown}: not created yet; `slipstream up` creates it")


def _held(role: str, shown: str, error: str, server: Server) -> Check:
    """The file is locked by another process: the server at the configured address, if it
    answers, says whether it can use it."""
    found = _HOLDER.search(error)
    holder = _process(int(found.group(1))) if found else "another process"
    if server.ready is None:
        return Check(
            role,
            "FAILED",
            f"{shown}: in use by {holder}, and no Slipstream server answers at {server.url} "
            "to report on it; if that process is the server, set SLIPSTREAM_HOST and "
            "SLIPSTREAM_PORT to its address, otherwise stop it",
        )
    verdict = server.ready.get(role, "not reported")
    state: Literal["ok", "FAILED"] = "ok" if verdict == "ok" else "FAILED"
    return Check(
        role, state, f"{shown}: in use by {holder}; the server at {server.url} reports it {verdict}"
    )


def _process(pid: int) -> str:
    """`process 41 (slipstream up)`, with the command line where the system shows it."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"process {pid}"
    return f"process {pid} ({b' '.join(filter(None, argv)).decode(errors='replace')})"


def server_url(settings: Settings) -> str:
    """Where a server started with these settings listens, as a client reaches it."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


async def ask_server(settings: Settings) -> Server:
    url = server_url(settings)
    if settings.port == 0:
        return Server(url, None, "SLIPSTREAM_PORT=0 (any free port): no address to ask")
    try:
        async with httpx.AsyncClient(timeout=SERVER_TIMEOUT) as http:
            response = await http.get(f"{url}/readyz")
    except httpx.HTTPError:
        return Server(url, None, "no server answering")
    try:
        ready = {str(k): str(v) for k, v in response.json().items()}
    except (ValueError, AttributeError):
        ready = {}
    if "status" not in ready:  # every Slipstream readiness answer has one
        return Server(url, None, f"HTTP {response.status_code}, not a Slipstream server")
    return Server(url, ready)


def _server_check(server: Server) -> Check:
    if server.ready is None:
        return Check("server", "--", f"{server.url}: {server.problem}")
    if server.ready["status"] == "ready":
        return Check("server", "ok", f"{server.url}: ready")
    parts = "; ".join(f"{k} {v}" for k, v in server.ready.items() if k != "status")
    return Check("server", "FAILED", f"{server.url}: {server.ready['status']}: {parts}")
