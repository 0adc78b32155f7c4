"""An import onto NATS, whose messages have a size limit (max_payload): an event over it is
left out and named with its place, and every other event of its chunk still goes."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import orjson

from slipstream.brokers.nats import NatsBroker
from slipstream.transfer.importer import Checkpoint, Importer
from slipstream.transfer.sources import sources
from tests.backends.nats.test_nats_broker import DATASET, SERVER, broker, prefix, settings
from tests.helpers import eventually, flight_event

__all__ = ["broker", "prefix"]  # fixtures, shared with the broker's other tests


async def test_an_event_too_large_for_the_broker_is_named_and_the_rest_goes(
    prefix: str, broker: NatsBroker, tmp_path: Path
) -> None:
    limit = broker.capabilities.max_message_bytes
    assert limit is not None
    events = [flight_event(i, prefix="nats") for i in range(5)]
    events[2]["note"] = "x" * (limit + 1)  # over the server's max_payload
    (tmp_path / "few.ndjson").write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    importer = Importer(
        settings(f"{SERVER}?prefix={prefix}"), DATASET, Checkpoint(None), max_backlog=10_000
    )
    with ExitStack() as stack:
        tally = await importer.run(list(sources([str(tmp_path / "few.ndjson")], stack)), broker)
    assert len(tally.left_out) == 1
    assert tally.left_out[0].startswith("few.ndjson line 3: not imported:")
    assert (tally.read, tally.accepted, tally.refused) == (5, 4, 0)
    wanted = {str(e["id"]) for i, e in enumerate(events) if i != 2}
    keys: set[str] = set()

    async def all_there() -> bool:
        keys.update(key for d in await broker.pull(DATASET, 100, wait=1) for key in _keys(d.data))
        return keys >= wanted

    await eventually(all_there, timeout=20, what="the four other events on the broker")
    assert keys == wanted


def _keys(data: bytes) -> list[str]:
    return [orjson.loads(line)["id"] for line in data.split(b"\n")]
