"""The worker's /healthz, /readyz and /metrics, served from its runtime's own state."""

from __future__ import annotations

from pathlib import Path

import httpx

from slipstream.config import Settings
from slipstream.runtime import Runtime
from slipstream.worker_http import serve_worker_http
from tests.conftest import free_port
from tests.helpers import eventually


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
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
