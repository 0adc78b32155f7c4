"""Datasets: what a dataset file declares, loaded once and checked before anything starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FieldType = Literal["string", "int", "float", "bool", "timestamp", "enum", "json"]
NUMERIC_TYPES = frozenset({"int", "float"})
# Columns every dataset table carries besides the declared fields.
RESERVED_COLUMNS = frozenset({"extra", "_received_at", "_stored_at"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RETENTION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file, dataset and field."""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FieldType
    required: bool = False
    description: str = ""
    values: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name_is_a_column(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"field name {name!r} must be lower case letters, digits and _ and start with a letter"
            )
        if name in RESERVED_COLUMNS:
            raise ValueError(f"field name {name!r} is reserved by Slipstream; rename it")
        return name

    @model_validator(mode="after")
    def _enum_has_values(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError(f"field {self.name!r} is an enum: list its allowed values in 'values'")
        if self.type != "enum" and self.values:
            raise ValueError(f"field {self.name!r}: 'values' only applies to type enum")
        return self


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    key: str = "id"
    event_time: str
    retention: timedelta | None = Field(default=None, description="None keeps rows forever")
    fields: tuple[FieldSpec, ...]

    @field_validator("name")
    @classmethod
    def _name_is_a_table(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"dataset name {name!r} must be lower case letters, digits and _ and start with a letter"
            )
        return name

    @field_validator("retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: Any) -> Any:
        if value is None or value in ("none", "forever"):
            return None
        if isinstance(value, str):
            match = _RETENTION.match(value.strip())
            if not match:
                raise ValueError(f"retention {value!r} must look like 90d, 12h, 4w or 'forever'")
            return timedelta(**{_UNITS[match[2]]: int(match[1])})
        return value

    @model_validator(mode="after")
    def _key_and_time_are_fields(self) -> Dataset:
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError("two fields share a name")
        key = by_name.get(self.key)
        if key is None or key.type != "string":
            raise ValueError(f"key {self.key!r} must be a declared field of type string")
        event_time = by_name.get(self.event_time)
        if event_time is None or event_time.type != "timestamp":
            raise ValueError(f"event_time {self.event_time!r} must be a declared timestamp field")
        if not event_time.required:
            raise ValueError(f"event_time field {self.event_time!r} must be required: true")
        return self

    def field(self, name: str) -> FieldSpec | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


class DatasetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: tuple[Dataset, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> DatasetFile:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError("two datasets share a name")
        if not names:
            raise ValueError("the file declares no dataset")
        return self


@dataclass(frozen=True)
class Catalog:
    """The datasets a deployment serves, by name."""

    datasets: dict[str, Dataset]
    source: str

    def get(self, name: str) -> Dataset | None:
        return self.datasets.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.datasets.values())

    @property
    def names(self) -> list[str]:
        return list(self.datasets)


def packaged_datasets_text() -> str:
    return resources.files("slipstream.datasets").joinpath("flights.yaml").read_text("utf-8")


def parse_catalog(text: str, source: str) -> Catalog:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{source}: not valid YAML{_yaml_place(exc)}") from exc
    try:
        parsed = DatasetFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatasetError(f"{source}: at {where or 'top level'}: {first['msg']}") from exc
    return Catalog({d.name: d for d in parsed.datasets}, source)


def load_catalog(path: Path | None) -> Catalog:
    """Load the datasets file, or the packaged `flights` dataset when no path is given."""
    if path is None:
        return parse_catalog(packaged_datasets_text(), "packaged flights dataset")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the datasets file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: the datasets file is not UTF-8 text (byte {exc.start}); "
            "it must be a YAML file saved as UTF-8"
        ) from exc
    return parse_catalog(text, str(path))


def _yaml_place(exc: yaml.YAMLError) -> str:
    """`: <problem> at line L, column C`, on one line (PyYAML's own text spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f": {problem}{where}"


def schema_changes(dataset: Dataset, existing: dict[str, FieldType]) -> list[FieldSpec]:
    """Fields to add to an existing table; raise DatasetError on a change that is not additive.

    `existing` maps each declared-field column already in the table to the field type it was
    created with. Columns of fields no longer declared stay in the table (old rows keep them).
    """
    added: list[FieldSpec] = []
    for spec in dataset.fields:
        old = existing.get(spec.name)
        if old is None:
            if spec.required:
                raise DatasetError(
                    f"dataset {dataset.name!r}: new field {spec.name!r} is required, but rows "
                    "already stored lack it; add it with required: false"
                )
            added.append(spec)
        elif (
            old != spec.type
            and not (old == "enum" and spec.type == "string")
            and not (old == "string" and spec.type == "enum")
        ):
            raise DatasetError(
                f"dataset {dataset.name!r}: field {spec.name!r} changed type from {old} to "
                f"{spec.type}; stored rows cannot follow. Add a new field instead, or move the "
                "old table away"
            )
    return added
