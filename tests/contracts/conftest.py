from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slipstream.brokers import Broker, create_broker
from slipstream.config import Settings
from slipstream.datasets import Dataset
from slipstream.stores import Store
from tests.contracts.backends import BROKER_BACKENDS, STORE_BACKENDS, Backend, selected
from tests.services import service_missing


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=selected(BROKER_BACKENDS), ids=lambda b: b.name)
def broker_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    why = backend.unavailable()
    if why:
        service_missing(backend.name, why)
    return backend


@pytest.fixture(params=selected(STORE_BACKENDS), ids=lambda b: b.name)
def store_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    differs = backend.emulator_differs.get(request.node.originalname)
    if differs:
        pytest.skip(f"{backend.name}: {differs}")
    why = backend.unavailable()
    if why:
        service_missing(backend.name, why)
    return backend


@pytest.fixture
def broker_settings(broker_backend: Backend, tmp_path: Path, token: str) -> Settings:
    """The backend's settings; tests read its lease and delivery limit from here."""
    return broker_backend.settings(tmp_path, token)


@pytest.fixture
async def broker(
    broker_backend: Backend, broker_settings: Settings, token: str
) -> AsyncIterator[Broker]:
    """A broker with two fresh topics: `ds_<token>` and `other_<token>`."""
    instance = create_broker(broker_settings)
    await instance.open([f"ds_{token}", f"other_{token}"])
    yield instance
    await instance.close()
    if broker_backend.cleanup is not None:
        await broker_backend.cleanup(token)


@pytest.fixture
def dataset(flights: Dataset, token: str) -> Dataset:
    """The flights dataset under a unique name, so each test has its own tables."""
    return flights.model_copy(update={"name": f"flights_{token}"})


@pytest.fixture
async def store(
    store_backend: Backend, tmp_path: Path, token: str, dataset: Dataset
) -> AsyncIterator[Store]:
    settings = store_backend.settings(tmp_path, token)
    instance = store_backend.open_store(settings)
    await instance.open([dataset])
    yield instance
    await instance.close()
    if store_backend.cleanup is not None:
        await store_backend.cleanup(token)
