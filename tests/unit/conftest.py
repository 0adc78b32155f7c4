"""Fixtures shared by the unit tests, and their rule: no service process starts here.

tests/unit runs in seconds with nothing else running; a test that needs a broker or a store
service belongs in tests/backends/NAME or tests/contracts."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from slipstream import logs
from tests import services


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


@pytest.fixture(autouse=True)
def no_services(request: pytest.FixtureRequest) -> Iterator[None]:
    """Starting moto, an emulator or nats-server from a unit test fails the test."""
    services.forbidden = f"the unit test {request.node.nodeid}"
    yield
    services.forbidden = None
