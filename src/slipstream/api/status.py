"""`GET /status`: a live HTML page of the last hour, its data, and the files it loads.

The page and its assets are open: they hold no data, only the shell that draws it. The data
(`GET /status/series`) needs the `read` scope when keys are configured, like every other read;
the page asks for a key when the data answers 401 or 403 and keeps it for the browser session.
Every asset is served from the package (no CDN), so the page works on a closed network.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, Response

from slipstream.api.auth import require
from slipstream.api.deps import runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.errors import ApiError
from slipstream.api.response_models import StatusSeries
from slipstream.api.routing import GuardedRoute
from slipstream.status_history import AVAILABILITY_OBJECTIVE, Point

router = APIRouter(tags=["operations"], route_class=GuardedRoute)
# Only these names are served: a fixed list cannot be walked out of the folder.
ASSETS = {
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
# The page changes with the package, not at run time; a short cache still spares each poll.
ASSET_CACHE = "public, max-age=300"
SERIES = (
    "ingested_per_s",
    "written_per_s",
    "freshness_p50",
    "freshness_p99",
    "backlog",
    "error_rate",
    "budget_spent",
)


@functools.cache
def _static(name: str) -> bytes:
    return (files("slipstream.api") / "static" / name).read_bytes()


@router.get(
    "/status",
    summary="A live HTML page: throughput, freshness, backlog, errors, budget",
    response_class=HTMLResponse,
    response_description="The page",
)
async def status_page() -> Response:
    return HTMLResponse(_static("status.html"), headers={"Cache-Control": "no-cache"})


@router.get(
    "/status/series",
    summary="The status page's data: the last hour at a fixed step (read scope)",
    responses={200: {"model": StatusSeries, "description": "The series"}},
    dependencies=[Depends(require("read"))],
)
async def status_series(request: Request) -> Response:
    history = runtime_of(request).status_history
    points: list[Point] = history.points()
    return json_response(
        {
            "step_seconds": history.step,
            "window_seconds": history.step * history.capacity,
            "availability_objective": AVAILABILITY_OBJECTIVE,
            "t": [p.at for p in points],
            "series": {name: [getattr(p, name) for p in points] for name in SERIES},
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/status/assets/{name}", include_in_schema=False)
async def status_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, f"no status asset named {name!r}")
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": ASSET_CACHE})
