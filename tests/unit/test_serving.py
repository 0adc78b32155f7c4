"""Process tuning belongs to the server process, applied once the app has started."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from slipstream import serving
from slipstream.api import asgi
from tests.unit.test_api import make_client


def test_an_app_built_and_started_leaves_the_interpreter_alone(tmp_path: Path) -> None:
    interval, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    with make_client(tmp_path) as client:
        assert client.get("/healthz").status_code == 200
    assert (sys.getswitchinterval(), gc.get_freeze_count()) == (interval, frozen)


async def test_the_server_tunes_the_process_after_the_app_has_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        seen.append(message["type"])
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    tuned = asyncio.Event()

    def tune() -> None:
        seen.append("tuned")
        tuned.set()

    monkeypatch.setattr(serving, "tune_server_process", tune)
    server = serving.TunedServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(tuned.wait(), 10)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    assert seen == ["lifespan.startup", "tuned"]


def test_the_asgi_factory_tunes_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(asgi, "tune_server_process", lambda: calls.append(True))
    monkeypatch.setenv("SLIPSTREAM_BROKER_URL", f"local:///{tmp_path / 'queue.db'}")
    monkeypatch.setenv("SLIPSTREAM_STORE_URL", f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    with TestClient(asgi.app()) as client:
        assert client.get("/healthz").status_code == 200
    assert calls == [True]
