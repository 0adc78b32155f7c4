"""Lookups every route shares: the runtime, and the dataset named in the path with its scope.

A dataset dependency also declares the scope its route needs (api/auth.py); the route class has
checked it before the dataset is looked up, so a caller without the scope learns nothing of which
datasets exist.
"""

from __future__ import annotations

from typing import Annotated

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
        catalog = runtime_of(request).catalog
        dataset = catalog.get(ds)
        if dataset is None:
            raise ApiError(
                404, f"no dataset named {ds!r}; known datasets: {', '.join(catalog.names)}"
            )
        return dataset


ReadDataset = Annotated[Dataset, Depends(DatasetWithScope("read"))]
IngestDataset = Annotated[Dataset, Depends(DatasetWithScope("ingest"))]
AdminDataset = Annotated[Dataset, Depends(DatasetWithScope("admin"))]
