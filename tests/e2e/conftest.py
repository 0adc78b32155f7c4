from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`slipstream up` on the embedded defaults, in a fresh directory."""
    process = ServerProcess(tmp_path).start()
    yield process
    process.kill()
