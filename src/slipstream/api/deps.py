"""Lookups every route shares: the runtime and the dataset named in the path."""

from __future__ import annotations

from fastapi import Request

from slipstream.api.errors import ApiError
from slipstream.datasets import Dataset
from slipstream.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def dataset_of(request: Request, ds: str) -> Dataset:
    dataset = runtime_of(request).catalog.get(ds)
    if dataset is None:
        known = ", ".join(runtime_of(request).catalog.names)
        raise ApiError(404, f"no dataset named {ds!r}; known datasets: {known}")
    return dataset
