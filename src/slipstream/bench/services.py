"""What a production pair needs around its processes: the checks that say why it cannot run
here, the moto server the SQS pair runs against, and the cleanup of what each run created."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson

from slipstream.bench.server import free_port, stop_group

CONNECT_TIMEOUT = 2.0
MOTO_START_TIMEOUT = 30.0
RUN = "{run}"  # in a pair's settings: replaced by a name unique to each server of the run
MOTO_ENV_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SNS")  # fmt: skip

Cleanup = Callable[[Mapping[str, str]], None]  # given the settings of the server that ran


@dataclass(frozen=True)
class Started:
    """A service started for a pair: the settings that reach it, and its processes."""

    env: Mapping[str, str | None] = field(default_factory=dict)
    pids: tuple[int, ...] = ()


class ServiceFailed(Exception):
    """A service the pair needs did not start, or could not be cleaned up."""


class Requirement(Protocol):
    def missing(self) -> str | None:
        """Why the pair cannot run on this machine; None when this requirement is met."""


@dataclass(frozen=True)
class Reachable:
    """A server that must answer a TCP connection (NATS, PostgreSQL)."""

    what: str
    host: str
    port: int
    process: str = ""  # its process name, when on this machine: its CPU is the pair's

    def missing(self) -> str | None:
        try:
            with socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT):
                return None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            return f"{self.what} not reachable at {self.host}:{self.port} ({why})"


@dataclass(frozen=True)
class Installed:
    """A module that must be importable: a driver (found without importing it), or with
    `load`, a module whose import itself must succeed (one still being written, say)."""

    module: str
    install: str = ""  # what to install, e.g. "pip install 'slipstream[nats]'"
    load: bool = False

    def missing(self) -> str | None:
        hint = f" ({self.install})" if self.install else ""
        try:
            if self.load:
                importlib.import_module(self.module)
                return None
            if importlib.util.find_spec(self.module) is not None:
                return None
        except Exception as exc:  # a parent package missing, or the module failing to import
            if self.load and not isinstance(exc, ModuleNotFoundError):
                return f"{self.module} does not import: {type(exc).__name__}: {exc}"
        return f"{self.module} is not installed{hint}"


def unready(requirements: tuple[Requirement, ...]) -> str | None:
    """Every reason the pair cannot run here, in one line; None when it can."""
    reasons = [reason for r in requirements if (reason := r.missing()) is not None]
    return "; ".join(reasons) or None


def run_name() -> str:
    """Unique to one server of one run, and valid as a NATS prefix, an SQS queue name prefix
    and a PostgreSQL schema: lower case letters, digits and _."""
    return f"bench_{os.getpid()}_{secrets.token_hex(4)}"


def resolve(env: Mapping[str, str], run: str) -> dict[str, str]:
    return {name: value.replace(RUN, run) for name, value in env.items()}


# --- cleanup after each server ---------------------------------------------------------------


def drop_schema(env: Mapping[str, str]) -> None:
    """Drop the run's PostgreSQL schema (`?schema=` of SLIPSTREAM_STORE_URL) and all in it."""
    import psycopg
    from psycopg import sql

    from slipstream.stores.postgres_options import parse_url

    conninfo, options = parse_url(env["SLIPSTREAM_STORE_URL"])
    if options.schema_ == "public":
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
        conn.execute(drop.format(sql.Identifier(options.schema_)))


def delete_streams(env: Mapping[str, str]) -> None:
    """Delete the NATS JetStream streams of the run's prefix (`?prefix=` of the broker URL):
    the work queue and dead letters of each dataset, with their consumers."""
    parts = urlsplit(env["SLIPSTREAM_BROKER_URL"])
    prefix = dict(parse_qsl(parts.query)).get("prefix")
    if not prefix:
        return
    asyncio.run(_delete_streams(f"nats://{parts.netloc}", prefix))


async def _delete_streams(server: str, prefix: str) -> None:
    import nats

    connection = await nats.connect(
        server, connect_timeout=CONNECT_TIMEOUT, allow_reconnect=False, max_reconnect_attempts=0
    )
    try:
        names: list[str] = []
        while True:  # the names API pages
            request = orjson.dumps({"subject": f"{prefix}.>", "offset": len(names)})
            reply = await connection.request("$JS.API.STREAM.NAMES", request, timeout=5.0)
            page = orjson.loads(reply.data)
            names.extend(page.get("streams") or [])
            if not page.get("streams") or len(names) >= page.get("total", 0):
                break
        own = f"{prefix.upper()}_"
        for name in names:
            if name.startswith(own):  # never a stream of someone else's that shares a subject
                await connection.request(f"$JS.API.STREAM.DELETE.{name}", b"", timeout=5.0)
    finally:
        await connection.close()


# --- moto, a local stand-in for AWS SQS/SNS --------------------------------------------------


def _moto_answers(endpoint: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(f"{endpoint}/moto-api/data.json", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def moto_server() -> Iterator[Started]:
    """A `moto_server` in a process group of its own, killed on exit; yields the settings that
    send boto3 to it (and unset those that could send it elsewhere)."""
    workdir = Path(tempfile.mkdtemp(prefix="slipstream-bench-moto-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = workdir / "moto.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while not _moto_answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                raise ServiceFailed(
                    f"moto server did not start: {tail or f'no answer on {endpoint}'}"
                )
            time.sleep(0.1)
        env: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            **dict.fromkeys(MOTO_ENV_CLEARED),
        }
        yield Started(env, (process.pid,))
    finally:
        if process is not None:
            stop_group(process)
        shutil.rmtree(workdir, ignore_errors=True)
