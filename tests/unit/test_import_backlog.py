"""An import publishes only while the dataset's backlog is within its bound, so live events
never queue behind more than that (transfer/importer.py), here on the real embedded broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from slipstream.brokers import Outgoing, create_broker
from slipstream.transfer.importer import Checkpoint, Importer
from tests import helpers
from tests.helpers import flight_event


async def test_an_import_waits_while_the_backlog_is_over_its_bound(tmp_path: Path) -> None:
    settings = helpers.settings(broker_url=f"local:///{tmp_path / 'queue.db'}")
    broker = create_broker(settings)
    await broker.open(["flights"])
    try:
        waiting = [flight_event(i) for i in range(1500)]
        await broker.publish("flights", [Outgoing(str(e["id"]), orjson.dumps(e)) for e in waiting])
        importer = Importer(settings, "flights", Checkpoint(None), max_backlog=1000)
        room = asyncio.ensure_future(importer._make_room(broker))
        with pytest.raises(TimeoutError):  # 1,500 waiting: it holds back
            await asyncio.wait_for(asyncio.shield(room), 0.5)
        taken = await broker.pull("flights", 600, 0.1)
        await broker.ack("flights", taken)  # 900 left: within the bound
        await asyncio.wait_for(room, 10)
    finally:
        await broker.close()
