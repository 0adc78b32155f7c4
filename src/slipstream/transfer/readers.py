"""The events of one file to import, as JSON texts with their places (`line 7`, `row 12`),
read as a stream in constant memory: NDJSON, a JSON array, CSV or Parquet, each plain, gzip or
zstd (by the name's last suffix), through pyarrow's readers.

Values become JSON as the API would take them: CSV cells stay text, except in the dataset's
`int`, `float` and `bool` columns, where a cell that reads as one becomes one (any other stays
text, so validation names the field) and `json` columns, whose cells are JSON texts; Parquet
values are written by orjson (times in UTC; binary as base64 text, decimals as numbers).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from slipstream.datasets import Dataset
from slipstream.transfer.sources import Source

Record = tuple[str, bytes]  # (place in the file, the event's JSON text)
COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json", ".csv": "csv"}
FORMATS[".parquet"] = "parquet"
CHUNK = 4 * 2**20
MAX_JSON_DOCUMENT = 256 * 2**20  # a JSON array is read whole: NDJSON streams
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
_TRUE, _FALSE = (
    frozenset({"true", "True", "TRUE", "1"}),
    frozenset({"false", "False", "FALSE", "0"}),
)


class UnreadableFile(ValueError):
    """A file that cannot be imported as it is; the message names it and says why."""


def kind_of(path: PurePosixPath, uri: str) -> tuple[str, str | None]:
    """(format, compression) from the file's name: `flights.ndjson.gz` → (ndjson, gzip)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression is not None:
        suffixes = suffixes[:-1]
    found = FORMATS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise UnreadableFile(
            f"{uri}: cannot tell its format from its name; name it .ndjson, .jsonl, .json, "
            ".csv or .parquet (and .gz or .zst when compressed)"
        )
    return found, compression


class Reading:
    """One file being read: its events (`records`), and how far into the file they have come
    (`done`, in bytes of the file as it lies, compressed or not), for an ETA."""

    def __init__(self, source: Source, dataset: Dataset) -> None:
        self.source = source
        self.dataset = dataset
        self.kind, self.compression = kind_of(PurePosixPath(source.path), source.uri)
        self.size = source.size
        self._raw: Any = None
        self._rows = (0, 1)  # Parquet: rows read, rows in the file
        self._finished = False

    def done(self) -> int:
        if self._finished:
            return self.size
        if self.kind == "parquet":
            read, rows = self._rows
            return self.size * read // max(rows, 1)
        return int(self._raw.tell()) if self._raw is not None and not self._raw.closed else 0

    def records(self) -> Iterator[Record]:
        """Every event of the file, in order."""
        uri = self.source.uri
        try:
            if self.kind == "parquet":
                if self.compression is not None:  # Parquet compresses inside itself
                    raise UnreadableFile(f"{uri}: a compressed Parquet file; decompress it first")
                yield from self._parquet()
                self._finished = True
                return
            raw = self.source.filesystem.open_input_file(self.source.path)  # tell() for the ETA
            with raw as self._raw:
                stream = self._raw
                if self.compression is not None:
                    stream = pa.CompressedInputStream(self._raw, self.compression)
                if self.kind == "ndjson":
                    yield from _ndjson(stream)
                elif self.kind == "json":
                    yield from _json(uri, stream)
                else:
                    yield from _csv(stream, self.dataset)
            self._finished = True
        except (OSError, pa.ArrowException) as exc:
            raise UnreadableFile(f"{uri}: {exc}") from exc

    def _parquet(self) -> Iterator[Record]:
        file = pq.ParquetFile(self.source.filesystem.open_input_file(self.source.path))
        rows = file.metadata.num_rows
        row = 0
        for batch in file.iter_batches(batch_size=10_000):
            for event in batch.to_pylist():
                row += 1
                yield f"row {row}", _dumped(event)
            self._rows = (row, rows)


def _ndjson(stream: Any) -> Iterator[Record]:
    number, held = 0, b""
    while chunk := stream.read(CHUNK):
        lines = (held + chunk).split(b"\n")
        held = lines.pop()
        for line in lines:
            number += 1
            if text := line.strip():
                yield f"line {number}", text
    if text := held.strip():
        yield f"line {number + 1}", text


def _json(uri: str, stream: Any) -> Iterator[Record]:
    data = stream.read(MAX_JSON_DOCUMENT + 1)
    if len(data) > MAX_JSON_DOCUMENT:
        raise UnreadableFile(
            f"{uri}: a JSON document over {MAX_JSON_DOCUMENT // 2**20} MiB is read whole; "
            "write it as NDJSON (one event per line), which streams"
        )
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableFile(f"{uri}: not valid JSON: {exc}") from None
    if not isinstance(document, list):
        yield "the document", orjson.dumps(document)
        return
    for index, event in enumerate(document):
        yield f"array index {index}", orjson.dumps(event)


def _csv(stream: Any, dataset: Dataset) -> Iterator[Record]:
    """Cells as text (so no cell can fail a whole block), then each declared column's type."""
    options = pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    reader = pacsv.open_csv(stream, convert_options=options)
    names = reader.schema.names
    typed = {f.name: f.type for f in dataset.fields}
    row = 0
    for batch in reader:
        columns = [batch.column(i).cast(pa.string()).to_pylist() for i in range(len(names))]
        for values in zip(*columns, strict=True):
            row += 1
            event = {n: _cell(typed.get(n), v) for n, v in zip(names, values, strict=True)}
            yield f"row {row}", _dumped(event)


def _cell(kind: str | None, value: str | None) -> Any:
    if value is None or kind in (None, "string", "enum", "timestamp"):
        return value
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "json":
            return orjson.loads(value)
    except ValueError:  # orjson's JSONDecodeError is one too
        return value  # validation refuses it, naming the field
    if kind == "bool" and (value in _TRUE or value in _FALSE):
        return value in _TRUE
    return value


def _dumped(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, default=_json_value, option=JSON_OPTIONS)


def _json_value(value: Any) -> Any:
    """What orjson cannot write itself: binary as base64 text, decimals as numbers, any other
    value (a time of day, an interval) as its text; validation then judges it by the schema."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
