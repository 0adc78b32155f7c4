"""The real processes the bench measures: `slipstream up`, or `slipstream api` beside N
`slipstream worker` processes. Their own temporary directory, free ports, their peak memory
watched, and each process group killed at the end whatever happened."""

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


def server_env(extra: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment without any SLIPSTREAM_* setting (a run must not depend on
    the shell it was started from), plus quiet logs and the scenario's own settings; a setting
    given as None is removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM_")}
    merged: dict[str, str | None] = {**env, "SLIPSTREAM_LOG_LEVEL": "warning", **extra}
    return {k: v for k, v in merged.items() if v is not None}


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
        import psutil

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


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child's process group, SIGKILL it if it lingers; anything still in the group
    (helpers the child started) is killed too."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class Child:
    """One `slipstream` process: its own process group and log file, its peak memory watched."""

    def __init__(self, label: str, args: list[str], env: Mapping[str, str], workdir: Path) -> None:
        self.label = label
        self.log_path = workdir / f"{label.replace(' ', '-')}.log"
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "slipstream", *args],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        self.rss = PeakRss(self.process.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerFailed(
                f"the {self.label} exited with code {self.process.returncode}\n" + self.log_tail()
            )

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self.rss.stop()
        stop_group(self.process)


class BenchServer:
    """`with BenchServer(env) as server:` a ready deployment at `server.url`, stopped on exit.

    With `workers=0`, one `slipstream up` (API and worker in one process); with N, one
    `slipstream api` and N `slipstream worker` processes, each worker serving its own /metrics.
    """

    def __init__(
        self,
        env: Mapping[str, str | None],
        *,
        workers: int = 0,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.env = server_env({**env, "SLIPSTREAM_HOST": "127.0.0.1"})
        self.workers = workers
        self.ready_timeout = ready_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_ports = [free_port() for _ in range(workers)]
        self.children: list[Child] = []

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

    @property
    def metrics_urls(self) -> list[str]:
        """Where the freshness histogram is: the server's, or each worker's."""
        if not self.workers:
            return [f"{self.url}/metrics"]
        return [f"http://127.0.0.1:{port}/metrics" for port in self.worker_ports]

    def start(self) -> None:
        port = ["--port", str(self.port)]
        if not self.workers:
            self.children.append(Child("server", ["up", *port], self.env, self.workdir))
        else:
            self.children.append(Child("api", ["api", *port], self.env, self.workdir))
        deadline = time.monotonic() + self.ready_timeout
        self._wait(f"{self.url}/readyz", deadline)
        # The API first: it creates the broker's topics and the store's tables, once.
        for number, metrics_port in enumerate(self.worker_ports, 1):
            args = ["worker", "--metrics-port", str(metrics_port)]
            self.children.append(Child(f"worker {number}", args, self.env, self.workdir))
        for url in self.metrics_urls if self.workers else []:
            # A worker creates its datasets' series once broker and store are open.
            self._wait(url, deadline, until="slipstream_events_written_total{dataset=")

    def _wait(self, url: str, deadline: float, until: str | None = None) -> None:
        with httpx.Client(timeout=2.0) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(url)
                    if response.status_code == 200 and (until is None or until in response.text):
                        return
                if time.monotonic() > deadline:
                    raise ServerFailed(
                        f"not ready after {self.ready_timeout:g} s at {url}\n"
                        + "\n".join(child.log_tail(6) for child in self.children)
                    )
                time.sleep(0.1)

    def check_alive(self) -> None:
        for child in self.children:
            child.check_alive()

    def metrics(self) -> list[str]:
        """A scrape of every process that serves the freshness histogram."""
        with httpx.Client(timeout=10.0) as client:
            texts = []
            for url in self.metrics_urls:
                response = client.get(url)
                response.raise_for_status()
                texts.append(response.text)
            return texts

    def peak_rss(self) -> list[int]:
        """Each process's high-water mark, the API (or the one server) first; call before
        close: the kernel's mark goes with the process."""
        return [child.rss.peak() for child in self.children]

    def close(self) -> None:
        """Stop every process group, and remove the directory."""
        for child in self.children:  # all at once: each finishes its batch in hand meanwhile
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        for child in reversed(self.children):
            child.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
