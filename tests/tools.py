"""Finding the command-line tools the deployment and observability checks run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.services import service_missing

ROOT = Path(__file__).resolve().parents[1]
# Where `make tools` and `make venv` put what they install, before PATH is searched.
LOCAL_BIN_DIRS = (
    Path(sys.executable).parent,
    ROOT / ".venv-iac" / "bin",
    ROOT / "deploy" / "checks" / "node_modules" / ".bin",
)


def find_tool(name: str) -> str | None:
    for folder in LOCAL_BIN_DIRS:
        candidate = folder / name
        if candidate.is_file():
            return str(candidate)
    return shutil.which(name)


def require_tool(name: str, how_to_get_it: str) -> str:
    """The path of `name`, or skip the test (fail under SLIPSTREAM_REQUIRE_SERVICES=1)."""
    path = find_tool(name)
    if path is None:
        service_missing(name, f"not installed; {how_to_get_it}")
    assert path is not None
    return path
