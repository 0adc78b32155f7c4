"""The shapes of the API's answers, for its OpenAPI description.

Handlers write their bodies with orjson (api/encoding.py), so these models are never used to
serialise: they are what the document says, and tests/e2e/test_schemathesis.py checks every
answer against them. `Event`, `NewEvent` and `StatsRow` stand for a dataset's own shapes: the
description gives each dataset's operations that dataset's fields (api/dataset_schemas.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from slipstream.datasets import FieldType


class Answer(BaseModel):
    # What a handler writes and no more: a key the description does not name is a change to it.
    model_config = ConfigDict(extra="forbid")


class Event(RootModel[dict[str, Any]]):
    """An event as stored: the dataset's fields, and `extra` (fields it does not declare)."""


class StatsRow(RootModel[dict[str, Any]]):
    """One bucket: its start, the count, `avg_<field>` per number, and `group` with group_by."""


class Rejection(Answer):
    index: int = Field(description="Position of the event in the request (0 for the first).")
    error: str = Field(description="Why it was refused; it is kept in the quarantine.")


class Accepted(Answer):
    accepted: int = Field(description="Events durable on the broker.")
    ids: list[str] = Field(description="Their ids, in request order.")
    rejected: list[Rejection] = Field(description="Events refused, each with the reason.")


class EventPage(Answer):
    items: list[Event]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last.")


class Stats(Answer):
    bucket: Literal["minute", "hour", "day"]
    group_by: str | None
    items: list[StatsRow]


class FieldDeclaration(Answer):
    name: str
    type: FieldType
    required: bool
    description: str
    values: list[str] = Field(description="The allowed values of an enum field.")


class DatasetOverview(Answer):
    name: str
    description: str
    key: str = Field(description="The field that holds the event id.")
    event_time: str = Field(description="The field that holds the event time.")
    retention_seconds: float | None = Field(description="null: rows are kept for ever.")
    fields: list[FieldDeclaration]
    rows: int
    quarantined: int
    backlog: int = Field(description="Events on the broker not yet stored, as last counted.")
    newest_event_time: str | None = Field(description="The latest event time stored (UTC).")
    last_stored_at: datetime | None
    seconds_since_last_write: float | None


class DatasetsOverview(Answer):
    datasets: list[DatasetOverview]


class Quarantined(Answer):
    id: str
    reason: str
    raw: str = Field(description="The event as it arrived.")
    received_at: datetime


class QuarantinePage(Answer):
    items: list[Quarantined]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last.")


class DeadLetter(Answer):
    id: str = Field(description="The dead letter's id, as a replay names it.")
    key: str = Field(description="The message key (the event id).")
    reason: str
    deliveries: int
    raw: str = Field(description="The message as published (invalid UTF-8 replaced).")
    published_at: datetime | None
    dead_at: datetime | None


class DeadLetterPage(Answer):
    items: list[DeadLetter]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last.")


class QuarantineReplayed(Answer):
    replayed: int = Field(description="Events valid now and published again.")
    released: int = Field(
        description="Of those, the ones this call removed from the quarantine (fewer than "
        "`replayed` when a replay running alongside released some first)."
    )
    still_invalid: list[dict[str, str]] = Field(
        description="`{id, error}` of each event still invalid; they stay in the quarantine."
    )
    not_found: list[str] = Field(
        description="Ids asked for that are not in the quarantine (unknown, or released already)."
    )


class DeadLettersReplayed(Answer):
    replayed: int = Field(description="Dead letters published again.")


class Health(Answer):
    status: Literal["ok"]


class Readiness(Answer):
    status: Literal["ready", "not ready"]
    reason: str | None = Field(None, description="Which backend is down, and why.")
    broker: str = Field(description='"ok", or "unavailable: <why>"')
    store: str = Field(description='"ok", or "unavailable: <why>"')


class SubscriptionNoted(Answer):
    confirmed: str | None = Field(None, description="The topic whose subscription was confirmed.")
    unsubscribed: str | None = Field(None, description="The topic that unsubscribed.")


class StatusSeries(Answer):
    step_seconds: float
    window_seconds: float
    availability_objective: float
    t: list[float] = Field(description="End of each step, seconds since the epoch.")
    series: dict[str, list[float | None]] = Field(
        description="One list per figure, a value per step (null: no data in that step)."
    )
