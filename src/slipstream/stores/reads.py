"""Every read of one dataset in one SQL database: the statement of the query's shape, its
parameters bound, and its rows made into the values the API writes.

Statements (`stores/statements.py`) are built on first use of a shape and kept, so a request
pays for a dictionary lookup and its parameters, not for writing SQL. What differs between the
databases is data (`stores/dialects.py`); how a value no Python value holds reads back is
`stores/values.py`. A store runs the bound statement with its driver and hands the rows back
here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from slipstream.datasets import Dataset
from slipstream.events import EXTRA_COLUMN
from slipstream.stores import ListQuery, QuarantinedEvent, StatsQuery
from slipstream.stores.dialects import SqlDialect
from slipstream.stores.statements import (
    ListShape,
    QuarantineShape,
    Statement,
    Statements,
    StatsShape,
    declared,
)
from slipstream.stores.values import stored_json, stored_time, time_param, utc

# Statements kept per dataset and kind of read. Shapes come from the filters a client combines;
# a few dozen cover real use, and the bound keeps a client that tries every combination from
# growing memory.
SHAPES = 256


class Bound(NamedTuple):
    statement: Statement
    params: dict[str, Any]

    @property
    def sql(self) -> str:
        return self.statement.sql


class Reads:
    def __init__(self, dialect: SqlDialect, dataset: Dataset, namespace: Sequence[str]) -> None:
        self.dialect = dialect
        self.dataset = dataset
        statements = Statements(dialect, dataset, namespace)
        self._get = statements.get()
        self._expire, self._release = statements.expire(), statements.release()
        self._summary = (statements.summary(False), statements.summary(True))
        self._any_prefixed = statements.any_prefixed()
        self._list = lru_cache(maxsize=SHAPES)(statements.list)
        self._stats = lru_cache(maxsize=SHAPES)(statements.stats)
        self._quarantine = lru_cache(maxsize=SHAPES)(statements.quarantine)
        self.names = (*dataset.field_names, EXTRA_COLUMN)
        self.key_index = dataset.field_names.index(dataset.key)
        self._times = tuple(i for i, f in enumerate(dataset.fields) if f.type == "timestamp")
        self._json = (
            *(i for i, f in enumerate(dataset.fields) if f.type == "json"),
            len(dataset.fields),  # extra
        )

    def _time(self, stamp: datetime | str, *, position: bool = False) -> datetime | str:
        return time_param(stamp, self.dialect.times, position=position)

    def _limit(self, limit: int) -> int | None:
        return limit if self.dialect.limit_literal else None

    def _where(
        self,
        params: dict[str, Any],
        since: datetime | None,
        until: datetime | None,
        filters: dict[str, Any],
        prefix: str | None,
    ) -> None:
        if since is not None:
            params["since"] = self._time(since)
        if until is not None:
            params["until"] = self._time(until)
        for i, value in enumerate(filters.values()):
            if value is not None:
                params[f"f{i}"] = self._time(value) if isinstance(value, datetime) else value
        if prefix is not None:
            params["prefix"] = prefix

    # --- statements with their parameters ----------------------------------------------------

    def get(self, ids: list[str]) -> Bound:
        return Bound(self._get, {"ids": ids})

    def list(self, query: ListQuery) -> Bound:
        filters = query.filters
        prefix = query.exclude_key_prefix
        shape = ListShape(
            tuple((name, value is None) for name, value in filters.items()),
            query.since is not None,
            query.until is not None,
            query.after is not None,
            prefix is not None,
            self._limit(query.limit),
        )
        statement = self._list(shape)
        params: dict[str, Any] = {}
        self._where(params, query.since, query.until, filters, prefix)
        if query.after is not None:
            params["after_time"] = self._time(query.after[0], position=True)
            params["after_key"] = query.after[1]
        if not self.dialect.limit_literal:
            params["limit"] = max(query.limit, 0)
        return Bound(statement, params)

    def stats(self, query: StatsQuery, *, exact: bool = False) -> Bound:
        """`exact`: float averages in numeric, which cannot overflow (and is slower)."""
        filters = query.filters
        prefix = query.exclude_key_prefix
        shape = StatsShape(
            query.bucket,
            query.group_by,
            tuple((name, value is None) for name, value in filters.items()),
            query.since is not None,
            query.until is not None,
            prefix is not None,
            exact,
        )
        statement = self._stats(shape)
        params: dict[str, Any] = {}
        self._where(params, query.since, query.until, filters, prefix)
        return Bound(statement, params)

    def quarantine(
        self, after: tuple[datetime, str] | None, ids: Sequence[str] | None, limit: int
    ) -> Bound:
        """Quarantined events oldest first, after a keyset position and/or among `ids`."""
        shape = QuarantineShape(after is not None, ids is not None, self._limit(limit))
        params: dict[str, Any] = {}
        if after is not None:
            params["after_time"], params["after_key"] = self._time(after[0]), after[1]
        if ids is not None:
            params["ids"] = list(ids)
        if not self.dialect.limit_literal:
            params["limit"] = max(limit, 0)
        return Bound(self._quarantine(shape), params)

    def summary(self, exclude_key_prefix: str | None) -> Bound:
        if exclude_key_prefix is None:
            return Bound(self._summary[0], {})
        return Bound(self._summary[1], {"prefix": exclude_key_prefix})

    def any_prefixed(self, prefix: str) -> Bound:
        return Bound(self._any_prefixed, {"prefix": prefix})

    def expire(self, before: datetime) -> Bound:
        return Bound(self._expire, {"before": self._time(before)})

    def release(self, ids: Sequence[str]) -> Bound:
        return Bound(self._release, {"ids": list(ids)})

    # --- rows ---------------------------------------------------------------------------------

    def event(self, row: Sequence[Any]) -> dict[str, Any]:
        event = dict(zip(self.names, row, strict=True))
        for i in self._times:
            if row[i] is not None:
                event[self.names[i]] = stored_time(row[i])
        for i in self._json:
            if row[i] is not None:
                event[self.names[i]] = stored_json(row[i])
        return event

    def stats_row(self, query: StatsQuery, bound: Bound, row: Sequence[Any]) -> dict[str, Any]:
        result = dict(zip(bound.statement.columns, row, strict=True))
        result["bucket"] = stored_time(result["bucket"])
        group_by = query.group_by
        if group_by is not None and declared(self.dataset, group_by).type == "timestamp":
            group = result["group"]
            result["group"] = stored_time(group) if group is not None else None
        return result

    @staticmethod
    def quarantined(row: Sequence[Any]) -> QuarantinedEvent:
        # The store writes received_at itself: always a time a datetime holds.
        return QuarantinedEvent(row[0], row[1], row[2], utc(row[3]))


def reads_for(
    cache: dict[str, Reads], dialect: SqlDialect, dataset: Dataset, namespace: Sequence[str] = ()
) -> Reads:
    """The dataset's Reads from `cache`, made again when its declaration changed (a reopen with
    more fields)."""
    found = cache.get(dataset.name)
    if found is None or (found.dataset is not dataset and found.dataset != dataset):
        found = cache[dataset.name] = Reads(dialect, dataset, namespace)
    return found
