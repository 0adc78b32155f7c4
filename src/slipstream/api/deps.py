"""Lookups every route shares: the runtime, and the dataset named in the path with its scope.

The scope check and the dataset lookup are one dependency, so a request pays for one resolution
(and a caller without the scope learns nothing of which datasets exist).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from slipstream.api.auth import check_scope
from slipstream.api.errors import ApiError
from slipstream.config import Scope
from slipstream.datasets import Dataset
from slipstream.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def dataset_with(scope: Scope) -> Callable[[Request, str], Awaitable[Dataset]]:
    async def resolve(request: Request, ds: str) -> Dataset:
        check_scope(request, scope)
        catalog = runtime_of(request).catalog
        dataset = catalog.get(ds)
        if dataset is None:
            raise ApiError(
                404, f"no dataset named {ds!r}; known datasets: {', '.join(catalog.names)}"
            )
        return dataset

    return resolve


ReadDataset = Annotated[Dataset, Depends(dataset_with("read"))]
IngestDataset = Annotated[Dataset, Depends(dataset_with("ingest"))]
AdminDataset = Annotated[Dataset, Depends(dataset_with("admin"))]
