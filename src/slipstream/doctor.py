"""`slipstream check`: every setting, the datasets file, and the reach of broker and store."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from slipstream.brokers import create_broker
from slipstream.config import load_settings
from slipstream.datasets import DatasetError, load_catalog
from slipstream.errors import ConfigError
from slipstream.stores import create_store

TIMEOUT = 5.0
Result = tuple[str, bool, str]


async def run_checks() -> list[Result]:
    results: list[Result] = []
    try:
        settings = load_settings()
    except ConfigError as exc:
        return [("settings", False, str(exc))]
    keys = settings.key_scopes()
    results.append(("settings", True, f"{len(keys)} API keys" if keys else "no API keys: OPEN"))
    try:
        catalog = load_catalog(settings.datasets)
    except DatasetError as exc:
        return [*results, ("datasets", False, str(exc))]
    results.append(("datasets", True, f"{', '.join(catalog.names)} from {catalog.source}"))

    broker = create_broker(settings)
    results.append(
        await _reach(
            "broker", settings.broker_url, broker.open(catalog.names), broker.ping(), broker.close()
        )
    )
    store = create_store(settings)
    results.append(
        await _reach(
            "store", settings.store_url, store.open(list(catalog)), store.ping(), store.close()
        )
    )
    return results


async def _reach(name: str, url: str, *steps: Coroutine[Any, Any, None]) -> Result:
    try:
        for step in steps:
            await asyncio.wait_for(step, TIMEOUT)
    except TimeoutError:
        return (name, False, f"{url}: no answer within {TIMEOUT:.0f}s")
    except Exception as exc:  # every failure is reported, none is fatal to the report
        return (name, False, f"{url}: {exc}")
    finally:
        for step in steps:
            step.close()  # a step skipped after a failure must not warn "never awaited"
    return (name, True, url)
