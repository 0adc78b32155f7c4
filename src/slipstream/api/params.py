"""Query-string values turned into typed values for a dataset's fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slipstream.api.errors import ApiError
from slipstream.datasets import Dataset, FieldSpec

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        stamp = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, f"{name}={value!r} is not an RFC 3339 time; use e.g. 2026-11-24T10:00:00Z"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def field_value(dataset: Dataset, spec: FieldSpec, raw: str) -> Any:
    problem = None
    match spec.type:
        case "string":
            return raw
        case "enum":
            if raw in spec.values:
                return raw
            problem = f"must be one of {', '.join(spec.values)}"
        case "int":
            try:
                return int(raw)
            except ValueError:
                problem = "must be an integer"
        case "float":
            try:
                return float(raw)
            except ValueError:
                problem = "must be a number"
        case "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            problem = "must be true or false"
        case "timestamp":
            return parse_time(spec.name, raw)
        case "json":
            problem = "is a json field, which cannot be filtered on"
    raise ApiError(400, f"filter {spec.name}={raw!r} {problem}")


def filters_from(
    dataset: Dataset, params: list[tuple[str, str]], reserved: set[str]
) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name, raw in params:
        if name in reserved:
            continue
        spec = dataset.field(name)
        if spec is None:
            fields = ", ".join(dataset.field_names)
            raise ApiError(
                400,
                f"unknown query parameter {name!r}: filters must name a field of "
                f"{dataset.name!r} ({fields})",
            )
        if name in filters:
            raise ApiError(400, f"filter {name!r} is given twice; give it once")
        filters[name] = field_value(dataset, spec, raw)
    return filters
