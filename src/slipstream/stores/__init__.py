"""The store contract: one idempotent write per batch, reads for the API, a quarantine.

A store is one module (or a few) picked by URL scheme from `STORES`. Its callers see it through
small roles, each naming what one caller needs: `StoreLifecycle` (the runtime, check), `Writer`
(the worker), `Reader` (the event routes), `Quarantine` (the quarantine routes), `Summaries`
(the dataset list), `Retention` (the runtime's sweeps). `Store` is all of them, what the
registry makes. Drivers' errors are sorted into TransientStoreError (retry) and
TerminalStoreError (dead-letter) inside the adapter. Any read may raise BackendUnavailable.

Times come back as UTC-aware datetimes; naive times passed in are read as UTC. A stored value no
Python value can hold (a time past 9999 or BC, JSON orjson cannot read) never fails a read: it
comes back as described in `stores/values.py` (a time as expanded ISO 8601 text). Filter and
group fields are declared, non-json fields (the API checks; a store raises ValueError otherwise).
Lists, stats and the summary leave out the rows whose key starts with `exclude_key_prefix` when
one is given (the API hides its own synthetic events so); `get` finds every row.
`open()` may be called again with more datasets.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from slipstream.events import HIDDEN_KEY_PREFIX
from slipstream.registry import BackendEntry, Reachable, load_backend
from slipstream.stores.values import stored_time

if TYPE_CHECKING:
    import pyarrow as pa

    from slipstream.config import Settings
    from slipstream.datasets import Dataset
    from slipstream.events import EventRows, Rejected

Bucket = Literal["minute", "hour", "day"]
VARIABLE = "SLIPSTREAM_STORE_URL"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The settings a store takes (nothing else of `Settings` reaches one)."""

    create_resources: bool = True  # SLIPSTREAM_CREATE_RESOURCES
    # Keys the API's reads leave out (`exclude_key_prefix`): a store that keeps counts may count
    # them apart, so that leaving them out of the overview's counts needs no scan.
    hidden_key_prefix: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> StoreSettings:
        return cls(settings.create_resources, HIDDEN_KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Newest first by (event time, id); `after` is the last (event time, id) already seen, its
    time as a list item had it (a datetime, or the text of a time no datetime holds)."""

    limit: int = 100
    filters: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    after: tuple[datetime | str, str] | None = None
    exclude_key_prefix: str | None = None  # rows whose key starts with it are left out


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """Counts per bucket of the rows a `ListQuery` with the same filters and range would list."""

    bucket: Bucket = "hour"
    group_by: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    exclude_key_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class QuarantineQuery:
    """Oldest first by (received time, id); `after` is the last (received_at, id) seen."""

    limit: int = 100
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class QuarantinedEvent:
    id: str
    reason: str
    raw: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    rows: int
    quarantined: int
    newest_event_time: datetime | str | None
    last_stored_at: datetime | None


def summary_of(rows: Any, quarantined: Any, newest: Any, stored: Any) -> DatasetSummary:
    """A summary from the values a store's query gave (times as naive UTC or text)."""
    last = stored_time(stored) if stored is not None else None
    return DatasetSummary(
        int(rows),
        int(quarantined),
        stored_time(newest) if newest is not None else None,
        # The store writes this time itself (always in range); one edited out of range by hand
        # reads as unknown rather than breaking `seconds_since_last_write`.
        last if isinstance(last, datetime) else None,
    )


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int  # rows that were new; the rest were already stored (redeliveries)
    quarantined: int  # quarantine rows that were new, likewise


class StoreLifecycle(Reachable, Protocol):
    async def open(self, datasets: Sequence[Dataset]) -> None:
        """Connect; create or migrate each dataset's tables (additive changes only)."""

    async def close(self) -> None: ...


class Writer(Protocol):
    async def write(
        self, dataset: Dataset, rows: EventRows, rejected: Sequence[Rejected]
    ) -> WriteResult:
        """Store valid rows and quarantined events in one commit; rows already there are kept."""


class Reader(Protocol):
    async def get(self, dataset: Dataset, event_id: str) -> dict[str, Any] | None: ...

    async def list(self, dataset: Dataset, query: ListQuery) -> builtins.list[dict[str, Any]]:
        """Up to `query.limit` rows, newest first."""

    async def stats(self, dataset: Dataset, query: StatsQuery) -> builtins.list[dict[str, Any]]:
        """Per bucket: `bucket`, `count`, `avg_<field>` per number, and `group` with `group_by`."""


class Quarantine(Protocol):
    async def quarantined(
        self, dataset: Dataset, query: QuarantineQuery
    ) -> builtins.list[QuarantinedEvent]: ...

    async def quarantined_by_id(
        self, dataset: Dataset, ids: Sequence[str] | None, limit: int
    ) -> builtins.list[QuarantinedEvent]:
        """The given quarantined events (the oldest `limit` when `ids` is None)."""

    async def release_quarantined(self, dataset: Dataset, ids: Sequence[str]) -> int:
        """Delete quarantined events that were replayed; return how many."""


class Summaries(Protocol):
    async def summary(
        self, dataset: Dataset, *, exclude_key_prefix: str | None = None
    ) -> DatasetSummary:
        """Row count, newest event time and last write of the rows a list would show."""


class Retention(Protocol):
    async def expire(self, dataset: Dataset, before: datetime) -> int:
        """Delete rows whose event time is older than `before`; return how many."""


@runtime_checkable
class ArrowLists(Protocol):
    """What a store that reads Arrow natively adds (DuckDB): bulk exports take it instead of
    `Reader.list`'s dicts (exports.py)."""

    async def list_arrow(self, dataset: Dataset, query: ListQuery) -> pa.Table:
        """`list` as an Arrow table: its columns in order, as the store reads them."""


class Store(StoreLifecycle, Writer, Reader, Quarantine, Summaries, Retention, Protocol):
    """Every role: what the registry makes, and what a process hands to each caller."""


STORES: dict[str, BackendEntry] = {
    "duckdb": BackendEntry(
        "slipstream.stores.duckdb:DuckDBStore",
        None,
        "duckdb:///./data/warehouse.duckdb",
        embedded=True,
    ),
    "postgresql": BackendEntry(
        "slipstream.stores.postgres:PostgresStore", "postgres", "postgresql://user@host:5432/db"
    ),
    "postgres": BackendEntry(
        "slipstream.stores.postgres:PostgresStore", "postgres", "postgres://user@host:5432/db"
    ),
    "bigquery": BackendEntry(
        "slipstream.stores.bigquery:BigQueryStore", "gcp", "bigquery://PROJECT/DATASET"
    ),
}


def create_store(settings: Settings) -> Store:
    cls = load_backend(settings.store_url, VARIABLE, STORES)
    store: Store = cls.from_url(settings.store_url, StoreSettings.of(settings))
    return store
