"""Shared test rules: services are used for real, and their absence is a skip or (in CI) a failure."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("SLIPSTREAM_REQUIRE_SERVICES") == "1"


def service_missing(name: str, why: str) -> None:
    """Skip the calling test because `name` is absent, or fail when CI requires services."""
    message = f"{name} is not available: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (SLIPSTREAM_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
