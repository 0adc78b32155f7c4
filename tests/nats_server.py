"""A nats-server of a test's own, on a free port, that the test can kill, pause and start again.

The shared server at 127.0.0.1:4222 serves the other tests; one that stops its server needs its
own. Needs the `nats-server` binary on the PATH (skipped, or failed in CI, without it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import free_port, port_open, service_missing


class NatsServer:
    def __init__(self, binary: str, store: Path, config: str = "") -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._command = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        if config:  # settings that have no command-line flag (max_payload, say)
            (store / "nats.conf").write_text(config)
            self._command += ["-c", str(store / "nats.conf")]
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self._processes.append(subprocess.Popen(self._command, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL: a crash, not a clean shutdown (the kernel closes its connections)."""
        self._processes[-1].kill()
        self._processes[-1].wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers. Returns once it has stopped."""
        process = self._processes[-1]
        process.send_signal(signal.SIGSTOP)
        os.waitpid(process.pid, os.WUNTRACED)  # returns when the child is stopped

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def nats_server(store: Path, config: str = "") -> Iterator[NatsServer]:
    binary = shutil.which("nats-server")
    if binary is None:
        service_missing("nats-server", "the nats-server binary is not on PATH")
    server = NatsServer(binary or "", store, config)
    server.start()
    try:
        yield server
    finally:
        server.close()
