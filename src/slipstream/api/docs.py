"""`GET /docs`: the OpenAPI document in Swagger UI, every file served by the app.

Swagger UI's files come from the swagger-ui-bundle-v2 package; the page and the script that
starts it are ours (static/docs.html, static/docs.js), so the page works on a closed network and
needs no inline script under the Content-Security-Policy of api/headers.py.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response
from swagger_ui_bundle import swagger_ui_path

from slipstream.api.errors import ApiError
from slipstream.api.routing import GuardedRoute
from slipstream.api.status import ASSET_CACHE

router = APIRouter(tags=["operations"], route_class=GuardedRoute, include_in_schema=False)
# Only these names are served: a fixed list cannot be walked out of the folders.
SWAGGER_UI = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
OURS = {"docs.js": "text/javascript; charset=utf-8"}


@functools.cache
def _ours(name: str) -> bytes:
    return (files("slipstream.api") / "static" / name).read_bytes()


@functools.cache
def _swagger_ui(name: str) -> bytes:
    data: bytes = (swagger_ui_path / name).read_bytes()
    return data


@router.get("/docs")
async def docs_page() -> Response:
    return Response(
        _ours("docs.html"),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    if name in OURS:
        body, media_type = _ours(name), OURS[name]
    elif name in SWAGGER_UI:
        body, media_type = _swagger_ui(name), SWAGGER_UI[name]
    else:
        raise ApiError(404, f"no docs asset named {name!r}")
    return Response(body, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})
