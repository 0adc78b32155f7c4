"""A dataset's own shapes in the OpenAPI description: its events, stats rows and filters.

Each follows what the server does with that dataset, so that a request the description calls
valid is accepted and one it calls invalid is refused:

- an event as sent (`NewEvent`): what the dataset's validator (events.py) takes: the declared
  fields with their types (integers in 64 bits, times in RFC 3339), the required ones, null for
  the others, and any other field (kept in `extra`);
- a body (`NewEvents`, `NewEventLines`): ingest accepts when at least one of its events is
  valid, refusing the others one by one, so a body is valid when it *contains* a valid event;
- an event as stored (`Event`): every declared field and `extra`, times in UTC as the store
  gives them (an expanded year such as +010000 for a time past 9999 put there by other means);
- the `FIELD=VALUE` filters, as api/params.py reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slipstream.api.params import INT64_MAX, INT64_MIN
from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import EXTRA_COLUMN, MAX_ID_LENGTH

# Marks a parameter whose value names one of the dataset's fields (group_by): given their names.
DATASET_FIELD = "x-dataset-field"
# Text a store can hold: no U+0000 (api/params.py refuses it in parameters).
STORABLE_TEXT = "^[^\\u0000]*$"
# A time as the API writes one read from a store: UTC, microseconds when there are any.
STORED_TIME = {
    "type": "string",
    "pattern": "^([+-][0-9]{6}|[0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    "(\\.[0-9]{1,6})?Z$",
    "description": "UTC, RFC 3339 (a year past 9999 or before 1 in expanded form: +010000).",
}
INT64 = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
# A time parameter: RFC 3339. api/params.py refuses a time whose UTC value leaves years 1-9999,
# which only a time on the first or the last day of the calendar can do; the description leaves
# those two days out rather than list the offsets that work on them.
TIME = {"type": "string", "format": "date-time", "pattern": "^(?!0001-01-01|9999-12-31)"}
TIME_OR_UNSET = {"anyOf": [TIME, {"type": "string", "maxLength": 0}]}
# Any JSON value a store can hold, for json fields and the fields an event does not declare:
# no U+0000 in a string or a key, at any depth. (Nesting past 254 levels is refused too; JSON
# Schema has no word for depth.)
STORABLE_JSON_NAME = "StorableJson"
STORABLE_JSON_REF = {"$ref": f"#/components/schemas/{STORABLE_JSON_NAME}"}
STORABLE_JSON = {
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": STORABLE_TEXT},
        {"type": "array", "items": STORABLE_JSON_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_TEXT},
            "additionalProperties": STORABLE_JSON_REF,
        },
    ]
}


def _sent(spec: FieldSpec) -> dict[str, Any]:
    """One field's values as the validator takes them."""
    match spec.type:
        case "string":
            return {"type": "string", "pattern": STORABLE_TEXT}
        case "int":
            return dict(INT64)
        case "float":
            return {"type": "number"}
        case "bool":
            return {"type": "boolean"}
        case "timestamp":
            return dict(TIME)
        case "enum":
            return {"type": "string", "enum": list(spec.values)}
    return dict(STORABLE_JSON_REF)  # json


def _stored(spec: FieldSpec) -> dict[str, Any]:
    match spec.type:
        case "string" | "enum":  # an enum's declared values may change; stored ones stay
            return {"type": "string"}
        case "int":
            return {"type": "integer"}
        case "float":
            return {"type": "number"}
        case "bool":
            return {"type": "boolean"}
        case "timestamp":
            return dict(STORED_TIME)
    return {}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]} if schema else schema


def _described(schema: dict[str, Any], spec: FieldSpec) -> dict[str, Any]:
    return {**schema, "description": spec.description} if spec.description else schema


def new_event(dataset: Dataset) -> dict[str, Any]:
    properties = {}
    for spec in dataset.fields:
        schema = _sent(spec)
        if spec.name == dataset.key:
            schema = {**schema, "minLength": 1, "maxLength": MAX_ID_LENGTH}
        properties[spec.name] = _described(schema if spec.required else _nullable(schema), spec)
    return {
        "type": "object",
        "description": f"An event of {dataset.name!r}. {dataset.description}".strip()
        + f" Fields it does not declare are kept in `{EXTRA_COLUMN}`.",
        "properties": properties,
        "propertyNames": {"pattern": STORABLE_TEXT},
        "additionalProperties": STORABLE_JSON_REF,
        "required": [f.name for f in dataset.fields if f.required],
    }


def new_events(dataset: Dataset) -> dict[str, Any]:
    one = {"$ref": f"#/components/schemas/NewEvent.{dataset.name}"}
    return {
        "description": "One event, or an array of events of which at least one is valid (the "
        "others are refused one by one, with their index).",
        "anyOf": [one, {"type": "array", "contains": one}],
    }


def new_event_lines(dataset: Dataset) -> dict[str, Any]:
    return {
        "description": "NDJSON: one event per line (CRLF and blank lines allowed); at least one "
        "valid, the others refused one by one, with their index.",
        "type": "array",
        "contains": {"$ref": f"#/components/schemas/NewEvent.{dataset.name}"},
    }


def stored_event(dataset: Dataset) -> dict[str, Any]:
    always = {dataset.key, dataset.event_time}
    properties = {}
    for spec in dataset.fields:
        schema = _stored(spec)
        properties[spec.name] = _described(
            schema if spec.name in always else _nullable(schema), spec
        )
    properties[EXTRA_COLUMN] = {
        "type": ["object", "string", "null"],
        "description": "Fields the event had that the dataset does not declare.",
    }
    return {
        "type": "object",
        "description": f"An event of {dataset.name!r} as stored.",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def stats_row(dataset: Dataset) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "bucket": {**STORED_TIME, "description": "Start of the bucket (UTC)."},
        "count": {"type": "integer", "minimum": 0},
        "group": {
            "type": ["string", "number", "boolean", "null"],
            "description": "The group_by field's value (with group_by only).",
        },
    }
    for spec in dataset.fields:
        if spec.type in ("int", "float"):
            properties[f"avg_{spec.name}"] = {"type": ["number", "null"]}
    return {
        "type": "object",
        "properties": properties,
        "required": ["bucket", "count"],
        "additionalProperties": False,
    }


# The stand-ins routes name (api/response_models.py) and the dataset's schema for each.
SHAPES: dict[str, Callable[[Dataset], dict[str, Any]]] = {
    "Event": stored_event,
    "NewEvent": new_event,
    "NewEvents": new_events,
    "NewEventLines": new_event_lines,
    "StatsRow": stats_row,
}


def filterable(dataset: Dataset) -> list[FieldSpec]:
    return [f for f in dataset.fields if f.type != "json"]


def _filter_value(spec: FieldSpec) -> dict[str, Any]:
    match spec.type:
        case "string":
            return {"type": "string", "pattern": STORABLE_TEXT}
        case "int":
            return dict(INT64)
        case "float":
            return {"type": "number"}
        case "bool":
            return {"type": "boolean"}
        case "timestamp":
            return dict(TIME)
    return {"type": "string", "enum": list(spec.values)}


def filter_parameters(dataset: Dataset) -> list[dict[str, Any]]:
    """One optional query parameter per field that can be filtered on (equality)."""
    return [
        {
            "name": spec.name,
            "in": "query",
            "required": False,
            "description": f"Only events whose {spec.name} equals this. {spec.description}".strip(),
            "schema": _filter_value(spec),
        }
        for spec in filterable(dataset)
    ]
