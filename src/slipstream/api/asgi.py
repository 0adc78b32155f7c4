"""An app factory for ASGI servers run on their own (`uvicorn --factory slipstream.api.asgi:app`).

It serves what `slipstream up` serves: API and worker, configured from SLIPSTREAM_* variables.
Set SLIPSTREAM_WORKER_IN_API=0 for the API alone. The bounds on request heads and connections
(api/protocol.py) belong to the server: with uvicorn, add
`--http slipstream.api.protocol:BoundedHttpProtocol` (the settings' defaults); another server
brings its own.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from slipstream.api.app import create_app
from slipstream.config import load_settings
from slipstream.runtime import Runtime


def app() -> FastAPI:
    with_worker = os.environ.get("SLIPSTREAM_WORKER_IN_API", "1") != "0"
    return create_app(Runtime(load_settings(), with_worker=with_worker), server_process=True)
