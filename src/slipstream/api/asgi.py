"""An app factory for ASGI servers run on their own (`uvicorn --factory slipstream.api.asgi:app`).

It serves what `slipstream up` serves: API and worker, configured from SLIPSTREAM_* variables.
Set SLIPSTREAM_WORKER_IN_API=false for the API alone. The bounds on request heads and connections
(api/protocol.py) belong to the server: with uvicorn, add
`--http slipstream.api.protocol:BoundedHttpProtocol` (the settings' defaults); another server
brings its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from slipstream.api.app import create_app
from slipstream.config import load_settings
from slipstream.runtime import Runtime
from slipstream.serving import tune_server_process


def app() -> FastAPI:
    settings = load_settings()
    served = create_app(Runtime(settings, with_worker=settings.worker_in_api))
    # The server calls this factory in the process it serves from, before it starts the app:
    # the backends' clients, opened at start, are all that the freeze leaves out.
    tune_server_process()
    return served
