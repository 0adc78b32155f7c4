"""One Google Pub/Sub emulator per test session, started on first use and stopped at exit.

`unavailable()` starts it (or finds the one `PUBSUB_EMULATOR_HOST` already names) and returns
None, or why it cannot; contract entries and fixtures call it. Once it runs, this process has
`PUBSUB_EMULATOR_HOST` and `PUBSUB_PROJECT_ID` set, so the client library and any `slipstream`
subprocess started with `os.environ` (or `env()`) talk to it.

`gcloud beta emulators pubsub start` spawns a Java server that outlives gcloud, so it runs in a
process group of its own and the whole group is killed at exit (atexit, and the session fixture).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, service_missing

PROJECT = "test-project"
START_DEADLINE = 60.0  # Java starts slowly on a busy 2-core machine


class _Emulator:
    def __init__(self) -> None:
        self.host: str | None = None
        self.failure: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    def start(self) -> None:
        external = os.environ.get("PUBSUB_EMULATOR_HOST")
        if external:  # started by someone else (CI service, a developer): use it, never stop it
            if not _answers(external):
                self.failure = f"PUBSUB_EMULATOR_HOST={external} does not answer"
                return
            os.environ.setdefault("PUBSUB_PROJECT_ID", PROJECT)
            self.host = external
            return
        if shutil.which("gcloud") is None:
            self.failure = "gcloud is not installed (it runs the Pub/Sub emulator)"
            return
        if shutil.which("java") is None:
            self.failure = "java is not installed (the Pub/Sub emulator needs Java 17+)"
            return
        self.workdir = Path(tempfile.mkdtemp(prefix="slipstream-pubsub-"))
        host = f"127.0.0.1:{free_port()}"
        (self.workdir / "data").mkdir()
        log = self.workdir / "emulator.log"
        env = {
            **os.environ,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    "gcloud",
                    "beta",
                    "emulators",
                    "pubsub",
                    "start",
                    f"--host-port={host}",
                    f"--project={PROJECT}",
                    f"--data-dir={self.workdir / 'data'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, Java child included
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_DEADLINE
        while not _answers(host):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                self.failure = "the Pub/Sub emulator did not start: " + (
                    " | ".join(tail) or f"no answer on {host} within {START_DEADLINE:.0f} s"
                )
                return
            time.sleep(0.2)
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        os.environ["PUBSUB_PROJECT_ID"] = PROJECT
        self.host = host

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
            # gcloud may exit before its Java child: make sure the group is gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if os.environ.get("PUBSUB_EMULATOR_HOST") == self.host:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        self.host = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


_emulator: _Emulator | None = None
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def _answers(host: str) -> bool:
    try:
        with _direct.open(f"http://{host}/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def unavailable() -> str | None:
    """None once the emulator runs (started now if needed), else why it cannot run."""
    global _emulator
    if _emulator is None:
        _emulator = _Emulator()
        _emulator.start()
    return _emulator.failure


def host() -> str:
    """`127.0.0.1:PORT` of the running emulator; skips (or fails in CI) when there is none."""
    why = unavailable()
    if why:
        service_missing("pubsub", why)
    assert _emulator is not None
    assert _emulator.host is not None
    return _emulator.host


def env() -> dict[str, str]:
    """Variables a subprocess needs to use the emulator (they are also in os.environ)."""
    return {"PUBSUB_EMULATOR_HOST": host(), "PUBSUB_PROJECT_ID": PROJECT}


def stop() -> None:
    """Stop the emulator this module started (a no-op otherwise); `unavailable` restarts it."""
    global _emulator
    if _emulator is not None:
        _emulator.stop()
        _emulator = None


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """The emulator's host:port for the session; stopped when the session ends."""
    yield host()
    stop()
