"""Fixtures shared by the unit tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from slipstream import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of the `slipstream` loggers, formatted as they are emitted (in context)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("slipstream")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
