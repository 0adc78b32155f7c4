"""Bulk export: the events of a dataset in a time range, as Parquet or NDJSON, streamed page by
page, so the memory held is a page's whatever the range.

Pages are the lists' own keyset pages (newest first, by event time then id), read from any
store through `Reader.list`; each Parquet page becomes a row group of one file. The store is
asked for the first page before anything is sent, so a store that cannot answer is a 503, not
a cut-short file. A failure after that ends the stream early: a Parquet reader sees it (a file
without its footer does not open); an NDJSON reader sees fewer events than the range's count in
`stats`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from slipstream.arrow_types import ARROW_TYPES, TEXT
from slipstream.datasets import Dataset
from slipstream.events import EXTRA_COLUMN
from slipstream.stores import ArrowLists, ListQuery, Reader
from slipstream.stores.values import position_text, position_time

PAGE_ROWS = 5_000
PARQUET_TYPE = "application/vnd.apache.parquet"
NDJSON_TYPE = "application/x-ndjson"
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def arrow_schema(dataset: Dataset) -> pa.Schema:
    """The export's columns: the dataset's fields in order, then `extra` (JSON text)."""
    columns = [pa.field(f.name, ARROW_TYPES[f.type]) for f in dataset.fields]
    return pa.schema([*columns, pa.field(EXTRA_COLUMN, TEXT)])


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=JSON_OPTIONS).decode()


def _time(value: Any) -> datetime | None:
    # A time the store kept as text (outside years 1-9999, which validation refuses, so only
    # written by hand) has no Parquet timestamp; NDJSON exports keep it.
    return value if isinstance(value, datetime) else None


def to_table(dataset: Dataset, schema: pa.Schema, events: list[dict[str, Any]]) -> pa.Table:
    """A page of events (as `Reader.list` gives them) as an Arrow table of `schema`."""
    arrays = []
    for spec in dataset.fields:
        values = [event.get(spec.name) for event in events]
        if spec.type == "json":
            values = [_json_text(v) for v in values]
        elif spec.type == "timestamp":
            values = [_time(v) for v in values]
        arrays.append(pa.array(values, type=ARROW_TYPES[spec.type]))
    arrays.append(pa.array([_json_text(e.get(EXTRA_COLUMN)) for e in events], type=TEXT))
    return pa.Table.from_arrays(arrays, schema=schema)


class _Sink:
    """Where the Parquet writer writes; what it wrote is taken after each page."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


Page = TypeVar("Page", list[dict[str, Any]], pa.Table)


async def _paged(
    read: Callable[[ListQuery], Awaitable[Page]],
    last: Callable[[Page], tuple[datetime | str, str]],
    query: ListQuery,
) -> AsyncIterator[Page]:
    """Every page of `query` (its limit is the page size), newest first, until one is short:
    each next page starts after the `last` position of the one before, as a cursor would."""
    while True:
        page = await read(query)
        if len(page):
            yield page
        if len(page) < query.limit:
            return
        stamp, key = last(page)
        query = replace(query, after=(position_time(position_text(stamp)), key))


def pages(store: Reader, dataset: Dataset, query: ListQuery) -> AsyncIterator[list[dict[str, Any]]]:
    """The events of `query`, a page at a time, as `Reader.list` gives them."""

    def last(page: list[dict[str, Any]]) -> tuple[datetime | str, str]:
        return page[-1][dataset.event_time], page[-1][dataset.key]

    return _paged(partial(store.list, dataset), last, query)


def tables(store: Reader, dataset: Dataset, query: ListQuery) -> AsyncIterator[pa.Table]:
    """The events of `query`, a page at a time, as Arrow tables of `arrow_schema`: read as Arrow
    where the store can (`ArrowLists`), made from `Reader.list`'s pages elsewhere."""
    schema = arrow_schema(dataset)

    async def read(query: ListQuery) -> pa.Table:
        if isinstance(store, ArrowLists):
            found = await store.list_arrow(dataset, query)
            return found.rename_columns(schema.names).cast(schema)  # naive times are UTC
        page = await store.list(dataset, query)
        return await asyncio.to_thread(to_table, dataset, schema, page)

    def last(table: pa.Table) -> tuple[datetime | str, str]:
        row = table.slice(table.num_rows - 1).to_pylist()[0]
        return row[dataset.event_time], row[dataset.key]

    return _paged(read, last, query)


async def first_then_rest(source: AsyncIterator[Page]) -> AsyncIterator[Page]:
    """`source` with its first page read now (the caller awaits this before answering), so a
    store that cannot answer fails the request rather than the stream."""
    first = await anext(source, None)

    async def rest() -> AsyncIterator[Page]:
        if first is not None:
            yield first
        async for page in source:
            yield page

    return rest()


async def parquet(schema: pa.Schema, source: AsyncIterator[pa.Table]) -> AsyncIterator[bytes]:
    """One Parquet file (zstd) of `schema`, a row group per page, written as the pages come.
    Encoding runs on a thread, so the event loop keeps serving other requests between pages."""
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    page: asyncio.Future[bytes] | None = None
    try:
        async for table in source:
            page = asyncio.ensure_future(asyncio.to_thread(_write_page, writer, sink, table))
            yield await asyncio.shield(page)
    finally:
        # A client gone mid-page: the writer is not closed under the thread still writing.
        if page is not None and not page.done():
            with suppress(Exception):
                await page
        writer.close()  # the footer: a file whose stream was cut short has none
    yield sink.take()


def _write_page(writer: pq.ParquetWriter, sink: _Sink, table: pa.Table) -> bytes:
    writer.write_table(table)
    return sink.take()


async def ndjson(
    source: AsyncIterator[list[dict[str, Any]]], dumps: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    """One event per line, as the lists give them."""
    async for page in source:
        yield b"".join(dumps(event) + b"\n" for event in page)
