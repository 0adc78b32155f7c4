"""One moto server (AWS SQS and SNS over real HTTP) per test session, started on first use.

`unavailable()` starts it (or checks the one `AWS_ENDPOINT_URL` already names) and returns None,
or why it cannot; contract entries and fixtures call it. Once it runs, this process has
`AWS_ENDPOINT_URL`, test credentials and `AWS_DEFAULT_REGION` set, so boto3 (and any `slipstream`
subprocess started with `os.environ`, or with `env()` added) talks to moto, never to AWS.

The server runs in a process group of its own (moto may spawn helpers) and the whole group is
killed at exit: atexit, and the `moto_server` session fixture.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, service_missing

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
START_DEADLINE = 30.0
# Variables that could send boto3 elsewhere than moto, or to credentials that do not exist.
CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_SQS",
           "AWS_ENDPOINT_URL_SNS")  # fmt: skip


class _Server:
    def __init__(self) -> None:
        self.endpoint: str | None = None
        self.failure: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.saved: dict[str, str | None] = {}

    def start(self) -> None:
        external = os.environ.get("AWS_ENDPOINT_URL")
        if external:  # started by someone else (CI service, a developer): use it, never stop it
            if not _reachable(external):  # moto, LocalStack…: any HTTP answer will do
                self.failure = f"AWS_ENDPOINT_URL={external} does not answer"
                return
            for name, value in {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION}.items():
                os.environ.setdefault(name, value)
            self.endpoint = external
            return
        if importlib.util.find_spec("moto.server") is None:
            self.failure = "moto is not installed (pip install 'moto[server]')"
            return
        self.workdir = Path(tempfile.mkdtemp(prefix="slipstream-moto-"))
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = self.workdir / "moto.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_DEADLINE
        while not _answers(endpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                self.failure = "moto server did not start: " + (
                    " | ".join(tail) or f"no answer on {endpoint} within {START_DEADLINE:.0f} s"
                )
                return
            time.sleep(0.1)
        self._set_env(endpoint)
        self.endpoint = endpoint

    def _set_env(self, endpoint: str) -> None:
        wanted: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": REGION,
            **CREDENTIALS,
            **dict.fromkeys(CLEARED),
        }
        for name, value in wanted.items():
            self.saved[name] = os.environ.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for name, value in self.saved.items():  # give the process its environment back
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved = {}
        self.endpoint = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


_server: _Server | None = None
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def _answers(endpoint: str) -> bool:
    """Whether moto answers at `endpoint` (its own API lists the recorded data)."""
    try:
        with _direct.open(f"{endpoint.rstrip('/')}/moto-api/data.json", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _reachable(endpoint: str) -> bool:
    try:
        with _direct.open(endpoint, timeout=1):
            return True
    except urllib.error.HTTPError:  # an answer, if not a happy one
        return True
    except OSError:
        return False


def unavailable() -> str | None:
    """None once moto runs (started now if needed), else why it cannot run."""
    global _server
    if _server is None:
        _server = _Server()
        _server.start()
    return _server.failure


def endpoint() -> str:
    """`http://127.0.0.1:PORT` of the running moto; skips (or fails in CI) when there is none."""
    why = unavailable()
    if why:
        service_missing("moto (sqs)", why)
    assert _server is not None
    assert _server.endpoint is not None
    return _server.endpoint


def env() -> dict[str, str]:
    """Variables a subprocess needs to use moto (they are also in os.environ)."""
    return {
        "AWS_ENDPOINT_URL": endpoint(),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        "AWS_SECRET_ACCESS_KEY": os.environ.get(
            "AWS_SECRET_ACCESS_KEY", CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        ),
    }


async def delete_resources(prefix: str) -> None:
    """Delete the queues and topics named `prefix-…` (a test's, on a long-lived server)."""
    await asyncio.to_thread(_delete_resources, prefix)


def _delete_resources(prefix: str) -> None:
    import boto3  # type: ignore[import-untyped]

    region = os.environ.get("AWS_DEFAULT_REGION", REGION)
    sqs, sns = boto3.client("sqs", region_name=region), boto3.client("sns", region_name=region)
    for url in sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page["Topics"]:
            if topic["TopicArn"].rsplit(":", 1)[-1].startswith(f"{prefix}-"):
                for sub in sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"]).get(
                    "Subscriptions", []
                ):
                    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                sns.delete_topic(TopicArn=topic["TopicArn"])


def stop() -> None:
    """Stop the server this module started (a no-op otherwise); `unavailable` restarts it."""
    global _server
    if _server is not None:
        _server.stop()
        _server = None


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's endpoint URL for the session; stopped when the session ends."""
    yield endpoint()
    stop()
