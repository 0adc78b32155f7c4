"""The worker's /healthz, /readyz and /metrics, served from its runtime's own state."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from slipstream import worker_http
from slipstream.runtime import Runtime
from slipstream.worker_http import serve_worker_http
from tests import helpers
from tests.helpers import eventually, wait_until
from tests.services import free_port


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    )
    runtime = Runtime(settings, with_api=False, with_worker=True)
    port = free_port()
    server = serve_worker_http(runtime, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            # Before the first ping, the worker is alive but not ready.
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/readyz")).status_code == 503
            await runtime.start()

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready, what="the worker to report ready")
            answer = (await client.get("/readyz")).json()
            assert answer == {"status": "ready", "broker": "ok", "store": "ok"}
            metrics = (await client.get("/metrics")).text
            assert 'slipstream_backend_up{component="store"} 1.0' in metrics
            assert "slipstream_worker_inflight_batches" in metrics

            # What the health loop records when a ping fails is what /readyz reports.
            runtime.backends["store"] = "unavailable: connection refused"
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["store"] == "unavailable: connection refused"
            assert down.json()["reason"] == "store unavailable: connection refused"

            missing = await client.get("/v1/datasets")
            assert missing.status_code == 404
            assert "/healthz, /readyz and /metrics" in missing.json()["error"]["message"]
    finally:
        server.shutdown()
        server.server_close()
        await runtime.stop()


def test_silent_clients_are_closed_and_cannot_take_every_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_http, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(worker_http._QuietHandler, "timeout", 0.5)
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    )
    runtime = Runtime(settings, with_api=False, with_worker=True)
    port = free_port()
    server = serve_worker_http(runtime, "127.0.0.1", port)
    threads = threading.active_count()
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
    try:
        # Four hold a thread each; the other six were closed unanswered.
        assert threading.active_count() <= threads + 4
        # Every silent one is closed by the server: recv sees the end of the stream.
        for sock in silent:
            assert sock.recv(1024) == b""
        wait_until(lambda: threading.active_count() <= threads, what="the handler threads to end")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()
        server.server_close()
