"""What the schemathesis run of tests/e2e/test_schemathesis.py adds to schemathesis:

- NDJSON, which it does not know: an array of events is a body of one JSON value per line
  (api/dataset_schemas.py describes NDJSON bodies so);
- integers written as integers. JSON Schema counts 25.0 as the integer 25 and schemathesis sends
  it so on purpose, but the dataset validator (events.py, msgspec in strict mode) takes an `int`
  field only as a number written without a fraction, which no schema can say.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import DeserializationContext, SerializationContext
from schemathesis.core.transport import Response
from schemathesis.hooks import HookContext

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def ndjson_lines(ctx: SerializationContext, value: Any) -> bytes:
    # A value that is not an array (a negative case) goes as the one line it is.
    values = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in values)


@schemathesis.deserializer(NDJSON)
def ndjson_items(ctx: DeserializationContext, response: Response) -> list[Any]:
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]


@schemathesis.hook
def map_body(context: HookContext, body: Any) -> Any:
    return _integers_as_integers(body)


def _integers_as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers_as_integers(item) for item in value]
    return value
