"""The SQL of every read of a dataset's tables (and of the two deletes), written once as sqlglot
expressions and rendered in a dialect (`stores/dialects.py`).

A statement depends on the query's shape only — which filters (and which test for NULL), which
bounds, whether a position or a key prefix to leave out is given, the bucket and group — never
on its values: those are named parameters (`:since`, `:f0`, …), bound by `stores/reads.py`,
which caches one statement per shape. Identifiers come from the dataset declaration and are
quoted by sqlglot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from slipstream.datasets import Dataset, FieldSpec
from slipstream.events import EXTRA_COLUMN
from slipstream.stores.dialects import SqlDialect

STORED_COLUMN = "_stored_at"
QUARANTINE_SUFFIX = "__quarantine"
BUCKETS = ("minute", "hour", "day")
# The SQL type each kind of parameter is declared with, where a dialect types its markers
# (ClickHouse); "strings" is a list of text (ids).
_PARAM_TYPES = {
    "string": "TEXT",
    "enum": "TEXT",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "strings": "ARRAY<TEXT>",
}
Filters = tuple[tuple[str, bool], ...]  # (field, tested for NULL) in the query's order


class ListShape(NamedTuple):
    filters: Filters
    since: bool
    until: bool
    after: bool
    exclude: bool  # a key prefix is left out
    limit: int | None  # the limit, where the dialect writes it as a number


class StatsShape(NamedTuple):
    bucket: str
    group_by: str | None
    filters: Filters
    since: bool
    until: bool
    exclude: bool
    exact: bool  # float averages taken in numeric, which cannot overflow


class QuarantineShape(NamedTuple):
    after: bool
    ids: bool
    limit: int | None


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    kinds: dict[str, str] = field(default_factory=dict)  # parameter → field type or "strings"
    columns: tuple[str, ...] = ()  # output names, where rows become dicts by position


class _Params:
    """The named parameters of one statement, collected while it is built."""

    def __init__(self, dialect: SqlDialect) -> None:
        self.kinds: dict[str, str] = {}
        self._dialect = dialect

    def __call__(self, name: str, kind: str) -> exp.Placeholder:
        self.kinds[name] = kind
        own = self._dialect.param_types.get(kind)
        sql_type = exp.DataType.build(own or _PARAM_TYPES[kind], dialect=self._dialect.sqlglot)
        return exp.Placeholder(this=name, kind=sql_type)


def _column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _table(name: str, namespace: Sequence[str]) -> exp.Table:
    parts = [exp.to_identifier(part, quoted=True) for part in namespace]
    catalog, db = [None, None, *parts][-2:]
    return exp.Table(this=exp.to_identifier(name, quoted=True), db=db, catalog=catalog)


def declared(dataset: Dataset, name: str) -> FieldSpec:
    """A field lists and stats may filter or group on: declared, and not json."""
    spec = dataset.field(name)
    if spec is None:
        raise ValueError(f"dataset {dataset.name!r} has no field {name!r}")
    if spec.type == "json":
        raise ValueError(f"field {name!r} is json and cannot be filtered or grouped on")
    return spec


class Statements:
    """Builds the statements of one dataset's tables in one database."""

    def __init__(self, dialect: SqlDialect, dataset: Dataset, namespace: Sequence[str]) -> None:
        self.dialect = dialect
        self.dataset = dataset
        self.table = _table(dataset.name, namespace)
        self.quarantine_table = _table(dataset.name + QUARANTINE_SUFFIX, namespace)
        self.time, self.key = _column(dataset.event_time), _column(dataset.key)
        self._null_ordering = Dialect.get_or_raise(dialect.sqlglot).NULL_ORDERING
        columns = [self._read(spec) for spec in dataset.fields]
        columns.append(self._json_text(_column(EXTRA_COLUMN)))
        self._events = exp.select(*columns).from_(self.table)

    # --- pieces -------------------------------------------------------------------------------

    def _render(self, expression: exp.Expr, params: _Params, *columns: str) -> Statement:
        return Statement(expression.sql(dialect=self.dialect.sqlglot), params.kinds, columns)

    def _naive(self, value: exp.Expr) -> exp.Expr:
        if not self.dialect.naive_utc:
            return value
        return exp.AtTimeZone(this=value, zone=exp.Literal.string("UTC"))

    def _json_text(self, value: exp.Expr) -> exp.Expr:
        if self.dialect.json_text == "format":
            return exp.JSONFormat(this=value)
        return exp.cast(value, "TEXT")

    def _read(self, spec: FieldSpec) -> exp.Expr:
        """A column as it is selected: times as naive UTC where the dialect says so, JSON as
        its text (parsed by `values.stored_json`, the same in every store)."""
        if spec.type == "timestamp":
            return self._naive(_column(spec.name))
        if spec.type == "json":
            return self._json_text(_column(spec.name))
        return _column(spec.name)

    def _member(self, column: exp.Expr, ids: exp.Expr) -> exp.Expr:
        if self.dialect.membership == "unnest":
            return exp.In(this=column, unnest=exp.Unnest(expressions=[ids]))
        return exp.EQ(this=column, expression=exp.Any(this=exp.Paren(this=ids)))

    def _order(self, value: exp.Expr, *, desc: bool = False) -> exp.Ordered:
        """In the database's own null order, so that its indexes serve the ORDER BY as written."""
        large, small = "nulls_are_large", "nulls_are_small"
        nulls_first = self._null_ordering == (large if desc else small)
        return exp.Ordered(this=value, desc=desc, nulls_first=nulls_first)

    def _limit(self, params: _Params, limit: int | None) -> exp.Expr:
        if self.dialect.limit_literal:
            return exp.Literal.number(max(limit or 0, 0))
        return params("limit", "int")

    def _after(self, params: _Params, time: exp.Expr, key: exp.Expr, *, before: bool) -> exp.Expr:
        """Rows past a keyset position (t, k): before it in descending order, or after it."""
        stamp, last = params("after_time", "timestamp"), params("after_key", "string")
        beyond = exp.LT if before else exp.GT
        if self.dialect.row_values:
            mine, theirs = exp.Tuple(expressions=[time, key]), exp.Tuple(expressions=[stamp, last])
            return beyond(this=mine, expression=theirs)
        reach = exp.LTE if before else exp.GTE
        # The first term is a plain range on the time column, which prunes partitions and skips
        # row groups by their min/max times.
        return exp.and_(
            reach(this=time, expression=stamp.copy()),
            exp.or_(beyond(this=time, expression=stamp.copy()), beyond(this=key, expression=last)),
        )

    def _terms(
        self, params: _Params, shape: ListShape | StatsShape, *, after: bool = False
    ) -> list[exp.Expr]:
        """The WHERE terms a list and a stats query share: time range, position, filters, and
        the key prefix left out."""
        terms: list[exp.Expr] = []
        if shape.since:
            terms.append(exp.GTE(this=self.time, expression=params("since", "timestamp")))
        if shape.until:
            terms.append(exp.LT(this=self.time, expression=params("until", "timestamp")))
        if after:
            terms.append(self._after(params, self.time, self.key, before=True))
        for i, (name, is_null) in enumerate(shape.filters):
            spec = declared(self.dataset, name)
            column = _column(spec.name)
            if is_null:
                terms.append(exp.Is(this=column, expression=exp.Null()))
            else:
                terms.append(exp.EQ(this=column, expression=params(f"f{i}", spec.type)))
        if shape.exclude:
            terms.append(self._not_prefixed(params))
        return terms

    def _not_prefixed(self, params: _Params) -> exp.Expr:
        # A prefix test of the key: cheap next to the scan, where a marker inside the row would
        # cost a JSON lookup per row.
        return exp.not_(exp.StartsWith(this=self.key, expression=params("prefix", "string")))

    # --- statements ---------------------------------------------------------------------------

    def get(self) -> Statement:
        params = _Params(self.dialect)
        query = self._events.where(self._member(self.key, params("ids", "strings")))
        if not self.dialect.unique_keys:
            query = query.order_by(self._order(_column(STORED_COLUMN)))
        return self._render(query, params)

    def list(self, shape: ListShape) -> Statement:
        params = _Params(self.dialect)
        query = self._events.where(*self._terms(params, shape, after=shape.after))
        query = query.order_by(self._order(self.time, desc=True), self._order(self.key, desc=True))
        return self._render(query.limit(self._limit(params, shape.limit)), params)

    def stats(self, shape: StatsShape) -> Statement:
        if shape.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {sorted(BUCKETS)}")
        params = _Params(self.dialect)
        unit = exp.var(shape.bucket.upper())
        columns: list[exp.Expr] = [exp.TimestampTrunc(this=self._naive(self.time), unit=unit)]
        names = ["bucket"]
        if shape.group_by is not None:
            columns.append(self._read(declared(self.dataset, shape.group_by)))
            names.append("group")
        columns.append(exp.Count(this=exp.Star()))
        names.append("count")
        for spec in self.dataset.fields:
            if spec.type in ("int", "float"):
                value: exp.Expr = _column(spec.name)
                if shape.exact and spec.type == "float":
                    value = exp.cast(value, "DECIMAL")
                columns.append(exp.cast(exp.Avg(this=value), "DOUBLE"))
                names.append(f"avg_{spec.name}")
        # By position: an alias could name a column of the table as well (a field `bucket`).
        keys = [exp.Literal.number(i) for i in ((1, 2) if shape.group_by is not None else (1,))]
        query = exp.select(*columns).from_(self.table).where(*self._terms(params, shape))
        # Groups in ascending order, the group without a value last.
        order = [exp.Ordered(this=k.copy(), nulls_first=False) for k in keys]
        query = query.group_by(*keys).order_by(*order)
        return self._render(query, params, *names)

    def quarantine(self, shape: QuarantineShape) -> Statement:
        params = _Params(self.dialect)
        received, ident = _column("received_at"), _column("id")
        columns = [ident, _column("reason"), _column("raw"), self._naive(received)]
        query = exp.select(*columns).from_(self.quarantine_table)
        if shape.after:
            query = query.where(self._after(params, received, ident, before=False))
        if shape.ids:
            query = query.where(self._member(ident, params("ids", "strings")))
        query = query.order_by(self._order(received), self._order(ident))
        return self._render(query.limit(self._limit(params, shape.limit)), params)

    def summary(self, exclude: bool) -> Statement:
        """Rows, quarantined events, the newest event time and the last write, in one query."""
        params = _Params(self.dialect)
        where = [self._not_prefixed(params)] if exclude else []

        def of_rows(value: exp.Expr) -> exp.Expr:
            return exp.Subquery(this=exp.select(value).from_(self.table).where(*where))

        query = exp.select(
            of_rows(exp.Count(this=exp.Star())),
            exp.Subquery(this=exp.select(exp.Count(this=exp.Star())).from_(self.quarantine_table)),
            # The maximum before the conversion: an index on the time column answers it.
            of_rows(self._naive(exp.Max(this=self.time))),
            of_rows(self._naive(exp.Max(this=_column(STORED_COLUMN)))),
        )
        return self._render(query, params)

    def any_prefixed(self) -> Statement:
        """Whether any key starts with `:prefix`."""
        params = _Params(self.dialect)
        rows = exp.select(exp.Literal.number(1)).from_(self.table)
        test = exp.StartsWith(this=self.key, expression=params("prefix", "string"))
        return self._render(exp.select(exp.Exists(this=rows.where(test))), params)

    def expire(self) -> Statement:
        params = _Params(self.dialect)
        older = exp.LT(this=self.time, expression=params("before", "timestamp"))
        return self._render(exp.delete(self.table, where=older), params)

    def release(self) -> Statement:
        params = _Params(self.dialect)
        chosen = self._member(_column("id"), params("ids", "strings"))
        return self._render(exp.delete(self.quarantine_table, where=chosen), params)
