"""Imports run by the server: start one (admin scope), ask how it goes (transfer/jobs.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from slipstream.api.answers import error_answer
from slipstream.api.deps import USES_BROKER, AdminDataset, runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.errors import ApiError, unavailable
from slipstream.api.response_models import ImportJobView
from slipstream.api.routing import GuardedRoute
from slipstream.errors import BackendUnavailable
from slipstream.transfer.jobs import MAX_RUNNING, Busy, ImportJobs, local_sources

router = APIRouter(tags=["import"], route_class=GuardedRoute)
REMOTE_SOURCE = r"^(s3|https?)://"  # the server reads no files of its own
# Described with its pattern; checked by `start_import`, whose refusal says what to do instead.
Source = Annotated[
    str,
    Field(max_length=2048),
    WithJsonSchema({"type": "string", "maxLength": 2048, "pattern": REMOTE_SOURCE}),
]
ImportId = Annotated[str, Path(description="The id `POST …/imports` answered.", max_length=64)]


class ImportRequest(BaseModel):
    sources: list[Source] = Field(
        min_length=1,
        max_length=100,
        description="`s3://bucket/key`, a prefix (`s3://bucket/2025/`) or a pattern "
        "(`s3://bucket/2025/*.parquet`), or `https://` files: NDJSON, JSON, CSV or Parquet, "
        "plain, .gz or .zst.",
    )
    max_backlog: int = Field(
        100_000, ge=1, description="Publish only while fewer events wait on the broker."
    )


def jobs_of(request: Request) -> ImportJobs:
    jobs: ImportJobs = request.app.state.imports
    return jobs


@router.post(
    "/v1/datasets/{ds}/imports",
    summary="Import files from S3 or HTTPS, run by the server",
    description="The import `slipstream import` does, run on a thread of this server: the "
    "answer comes at once, with the import's id; `GET …/imports/{import_id}` tells how it goes. "
    f"At most {MAX_RUNNING} run at once (429 past that). An import lives in the server process "
    "that started it and ends with it (run it again: the events are stored once).",
    status_code=202,
    responses={
        202: {"model": ImportJobView, "description": "The import, started"},
        429: error_answer(f"{MAX_RUNNING} imports are running already.", "Retry-After"),
    },
    dependencies=[USES_BROKER],
)
async def start_import(
    request: Request, dataset: AdminDataset, body: Annotated[ImportRequest, Body()]
) -> Response:
    local = local_sources(body.sources)
    if local:
        raise ApiError(
            400,
            f"sources {local[:3]} are not on S3 or behind HTTPS: the server reads no files of "
            "its own; run `slipstream import` where the files are",
        )
    try:  # not started while the broker it publishes to is down
        await runtime_of(request).broker.ping()
    except BackendUnavailable as exc:
        raise unavailable("broker", exc) from None
    try:
        job = jobs_of(request).start(dataset.name, body.sources, body.max_backlog)
    except Busy as exc:  # the caller's to pace, as a rate limit is: not the server down
        raise ApiError(
            429, f"{exc}; retry when one has ended", headers={"Retry-After": "30"}
        ) from None
    where = f"/v1/datasets/{dataset.name}/imports/{job.id}"
    return json_response(job.view(), status=202, headers={"Location": where})


@router.get(
    "/v1/datasets/{ds}/imports/{import_id}",
    summary="How an import the server runs goes",
    responses={200: {"model": ImportJobView, "description": "The import"}},
)
async def import_status(request: Request, dataset: AdminDataset, import_id: ImportId) -> Response:
    job = jobs_of(request).get(dataset.name, import_id)
    if job is None:
        raise ApiError(
            404,
            f"no import {import_id!r} of dataset {dataset.name!r} in this server process (an "
            "import lives in the process that started it, until it restarts)",
        )
    return json_response(job.view())
