"""Lookups every route shares: the runtime, and the dataset named in the path with its scope.

A dataset dependency also declares the scope its route needs (api/auth.py); the route class has
checked it before the dataset is looked up, so a caller without the scope learns nothing of which
datasets exist. `USES_STORE` and `USES_BROKER` declare the backends a route cannot answer
without, which its OpenAPI description turns into a documented 503 (api/answers.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Request

from slipstream.api.auth import Requires
from slipstream.api.errors import ApiError
from slipstream.datasets import Dataset
from slipstream.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class DatasetWithScope(Requires):
    """The dataset named by the path's `ds`, for a route that needs this scope."""

    async def __call__(self, request: Request, ds: str) -> Dataset:  # type: ignore[override]
        self.verify(request)
        return dataset_named(runtime_of(request), ds)


def dataset_named(runtime: Runtime, ds: str) -> Dataset:
    """The declared dataset called `ds`; ApiError 404 naming the known ones otherwise."""
    dataset = runtime.catalog.get(ds)
    if dataset is None:
        names = ", ".join(runtime.catalog.names)
        raise ApiError(404, f"no dataset named {ds!r}; known datasets: {names}")
    return dataset


ReadDataset = Annotated[Dataset, Depends(DatasetWithScope("read"))]
IngestDataset = Annotated[Dataset, Depends(DatasetWithScope("ingest"))]
AdminDataset = Annotated[Dataset, Depends(DatasetWithScope("admin"))]


class Uses:
    """Declares that a route needs the store or the broker (and so may answer 503)."""

    def __init__(self, backend: Literal["store", "broker"]) -> None:
        self.backend = backend

    async def __call__(self) -> None:
        return None


USES_STORE = Depends(Uses("store"))
USES_BROKER = Depends(Uses("broker"))
