"""A real `slipstream up` process for the bench: its own temporary directory, a free port, its
peak memory watched, and its whole process group killed at the end whatever happened."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
RSS_INTERVAL = 0.2


class ServerFailed(Exception):
    """The server did not start, or died during a scenario."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any SLIPSTREAM_* setting (a run must not depend on
    the shell it was started from), plus quiet logs and the scenario's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM_")}
    return {**env, "SLIPSTREAM_LOG_LEVEL": "warning", **extra}


def _status_kib(pid: int, field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status in KiB; None off Linux or once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmRSS")
    if kib is not None:
        return kib * 1024
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # not installed, or the process is gone
        return None


class PeakRss:
    """The largest resident set of a process: sampled on a thread, and on Linux the kernel's
    own high-water mark (VmHWM), which also catches peaks between two samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sampled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            self.sampled = max(self.sampled, rss_bytes(self.pid) or 0)

    def peak(self) -> int:
        """Call while the process is alive: the high-water mark goes with it."""
        hwm = _status_kib(self.pid, "VmHWM")
        return max(self.sampled, rss_bytes(self.pid) or 0, (hwm or 0) * 1024)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


class BenchServer:
    """`with BenchServer(env) as server:` a ready server at `server.url`; killed on exit."""

    def __init__(self, env: Mapping[str, str], *, ready_timeout: float = READY_TIMEOUT) -> None:
        self.env = server_env(env)
        self.ready_timeout = ready_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.rss: PeakRss | None = None

    def __enter__(self) -> BenchServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        command = [sys.executable, "-m", "slipstream", "up", "--port", str(self.port)]
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        self.rss = PeakRss(self.process.pid)
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServerFailed(
                        f"not ready after {self.ready_timeout:g} s at {self.url}/readyz\n"
                        + self.log_tail()
                    )
                time.sleep(0.1)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerFailed(
                f"the server exited with code {self.process.returncode}\n" + self.log_tail()
            )

    def metrics(self) -> str:
        with httpx.Client(timeout=10.0) as client:
            response = client.get(f"{self.url}/metrics")
            response.raise_for_status()
            return response.text

    def peak_rss(self) -> int:
        return self.rss.peak() if self.rss is not None else 0

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers, and remove the directory."""
        if self.rss is not None:
            self.rss.stop()
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        if process is not None:
            # Anything the server may have started lives in its group: end it too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
