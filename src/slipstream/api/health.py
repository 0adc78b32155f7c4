"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from slipstream.api.deps import runtime_of
from slipstream.api.encoding import json_response
from slipstream.api.routing import GuardedRoute

router = APIRouter(tags=["operations"], route_class=GuardedRoute)
PING_TIMEOUT = 2.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Broker and store are reachable (503 names the one that is not)")
async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    checks = {"broker": runtime.broker.ping(), "store": runtime.store.ping()}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, PING_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which and why
            results[name] = f"unavailable: {exc or type(exc).__name__}"
    ready = all(v == "ok" for v in results.values())
    return json_response(
        {"status": "ready" if ready else "not ready", **results}, 200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics (text format)")
async def metrics(request: Request) -> Response:
    registry = runtime_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
