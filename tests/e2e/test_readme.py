"""Every README shell example that talks to a local server runs, as written, against one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
BASE = "http://127.0.0.1:8080"
# As a user who installed Slipstream runs them: its `slipstream` command first on the PATH.
INSTALLED = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def server_examples() -> list[str]:
    """The `sh` blocks whose commands (not their comments) name the local server."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if any(BASE in line.split("#")[0] for line in b.splitlines())]


def test_the_readme_has_server_examples() -> None:
    assert len(server_examples()) >= 8


def test_every_server_example_runs_as_written(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        for block in server_examples():
            # Only the address changes; -f makes an HTTP error fail the example.
            script = block.replace(BASE, server.url).replace("curl -s ", "curl -sSf ")

            def runs(script: str = script) -> subprocess.CompletedProcess[str] | None:
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", script],
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                    env=INSTALLED,
                )
                return result if result.returncode == 0 else None

            # A read may run before the worker has stored what the example before it sent.
            wait_until(runs, timeout=30, interval=0.2, what=f"README example to run:\n{block}")
    finally:
        server.kill()
