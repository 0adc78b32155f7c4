"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from slipstream.api.deps import runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.response_models import Health, Readiness
from slipstream.api.routing import GuardedRoute
from slipstream.runtime import readiness

router = APIRouter(tags=["operations"], route_class=GuardedRoute)


class PrometheusText(Response):
    """The Prometheus text format, in the version prometheus_client writes."""

    media_type = CONTENT_TYPE_LATEST


@router.get(
    "/healthz",
    summary="The process is alive",
    responses={200: {"model": Health, "description": "Alive"}},
)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="Broker and store are reachable (503 names the one that is not)",
    responses={
        200: {"model": Readiness, "description": "Ready"},
        503: {"model": Readiness, "description": "Not ready: `reason` names the backend"},
    },
)
async def readyz(request: Request) -> Response:
    ready, body = readiness(await runtime_of(request).check_backends())
    return json_response(body, 200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=PrometheusText,
    response_description="Every metric, in the Prometheus text format",
)
async def metrics(request: Request) -> Response:
    registry = runtime_of(request).metrics.registry
    return PrometheusText(generate_latest(registry))
