"""What every test shares: the backend markers, the `flights` dataset, the session services.

Each test of tests/backends/NAME/ is marked NAME, and each contract test run over a backend is
marked by that backend, so `pytest -m postgres` runs what PostgreSQL alone decides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slipstream.datasets import Dataset, load_catalog
from tests import services

BACKENDS = ("local", "nats", "sqs", "pubsub", "duckdb", "postgres", "bigquery")
TESTS = Path(__file__).parent


def backend_of(item: pytest.Item) -> str | None:
    """The backend a test runs over: its tests/backends folder, or its contract parameter."""
    parts = item.path.relative_to(TESTS).parts
    if parts[0] == "backends" and parts[1] in BACKENDS:
        return parts[1]
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for value in callspec.params.values():
        name = str(getattr(value, "name", "")).split("-")[0]  # sqs-direct is SQS
        if name in BACKENDS:
            return name
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        backend = backend_of(item)
        if backend is not None:
            item.add_marker(backend)


def pytest_sessionfinish() -> None:
    services.stop_all()


@pytest.fixture
def flights() -> Dataset:
    """The packaged `flights` dataset, as `SLIPSTREAM_DATASETS` unset gives it."""
    dataset = load_catalog(None).get("flights")
    assert dataset is not None
    return dataset


@pytest.fixture(scope="session")
def moto_server() -> str:
    """moto's endpoint URL (started on first use, for the whole session)."""
    return services.moto.require()


@pytest.fixture(scope="session")
def pubsub_emulator() -> str:
    """The Pub/Sub emulator's host:port (started on first use, for the whole session)."""
    return services.pubsub.require()
