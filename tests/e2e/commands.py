"""Run `slipstream …` as a user does: a real process, in a directory of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def slipstream(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    python: tuple[str, ...] = ("-m", "slipstream"),
) -> subprocess.CompletedProcess[str]:
    """`python` replaces `-m slipstream`, e.g. with `-c CODE` that prepares the process first."""
    return subprocess.run(
        [sys.executable, *python, *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        input=stdin.decode() if stdin else None,
        text=True,
        check=False,
    )
