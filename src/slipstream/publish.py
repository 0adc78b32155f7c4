"""`slipstream publish`: the API's intake rules, straight onto the broker."""

from __future__ import annotations

from slipstream.brokers import create_broker
from slipstream.config import Settings
from slipstream.datasets import load_catalog
from slipstream.errors import ConfigError
from slipstream.events import EventCodec
from slipstream.intake import Intake, MalformedBody, from_json, from_ndjson

CHUNK = 1000


def parse_file(data: bytes, codec: EventCodec) -> Intake:
    """A JSON array or object, or NDJSON; decided by the content, not the file name."""
    attributes = {"dataset": codec.dataset.name}
    if data.lstrip()[:1] == b"[":
        return from_json(data, codec, attributes)
    intake = from_ndjson(data, codec, attributes)
    if intake.accepted == 0 and len(intake.rejected) > 1:
        # Perhaps one pretty-printed JSON object spread over several lines.
        try:
            return from_json(data, codec, attributes)
        except MalformedBody:
            pass
    return intake


async def publish_file(settings: Settings, dataset_name: str, data: bytes) -> Intake:
    catalog = load_catalog(settings.datasets)
    dataset = catalog.get(dataset_name)
    if dataset is None:
        raise ConfigError(f"no dataset named {dataset_name!r}; known: {', '.join(catalog.names)}")
    intake = parse_file(data, EventCodec(dataset))
    broker = create_broker(settings)
    await broker.open(catalog.names)
    try:
        for start in range(0, len(intake.messages), CHUNK):
            await broker.publish(dataset.name, intake.messages[start : start + CHUNK])
    finally:
        await broker.close()
    return intake
