"""`slipstream export`: a running API's export of a dataset, to a file, standard output or an
`s3://bucket/key`, streamed (never held whole in memory).

A file appears only once the export is whole: it is written beside its destination and renamed
into place at the end, so a stream cut short (the server or the network failing mid-way) leaves
no file that looks complete. For S3 the upload is multipart (boto3's `upload_fileobj`) and a
stream cut short aborts it, so no object is made. A Parquet export is whole when it ends with
its footer; the server names a failure that happens before the first byte.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from slipstream.errors import ConfigError

PARQUET_MAGIC = b"PAR1"
FORMATS = {"parquet": "application/vnd.apache.parquet", "ndjson": "application/x-ndjson"}
TIMEOUT = httpx.Timeout(30.0, read=300.0)


class ExportFailed(Exception):
    """The export could not be made whole; the message says why and what to do."""


@dataclass
class Outcome:
    size: int = 0  # bytes received
    tail: bytes = b""  # the last of them: a Parquet file ends with its magic


def export_url(base: str, dataset: str) -> str:
    return f"{base.rstrip('/')}/v1/datasets/{dataset}/export"


Params = list[tuple[str, str | int | float | bool | None]]


def parameters(since: str | None, until: str | None, where: list[str]) -> Params:
    """The query of `--since`, `--until` and each `--where FIELD=VALUE`."""
    params: Params = [
        (name, value) for name, value in (("since", since), ("until", until)) if value
    ]
    for condition in where:
        field, sep, value = condition.partition("=")
        if not sep or not field:
            raise ConfigError(f"--where {condition!r}: write it as FIELD=VALUE, e.g. status=landed")
        params.append((field, value))
    return params


def _chunks_of(body: Iterator[bytes], outcome: Outcome) -> Iterator[bytes]:
    """`body`'s chunks, counted into `outcome` as they pass."""
    for chunk in body:
        outcome.size += len(chunk)
        outcome.tail = (outcome.tail + chunk)[-len(PARQUET_MAGIC) :]
        yield chunk


class _Reader:
    """The response body as a file object with `read(n)`, for boto3's multipart upload."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._held = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._held) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._held += chunk
        if size < 0:
            out, self._held = self._held, b""
        else:
            out, self._held = self._held[:size], self._held[size:]
        return out


def _refusal(response: httpx.Response) -> str:
    response.read()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    return f"the server answered {response.status_code}: {message}"


def export(
    url: str,
    params: Params,
    output: str,
    kind: str,
    api_key: str | None,
    client: httpx.Client | None = None,
) -> Outcome:
    """Stream the export at `url` to `output` (a path, `-`, or `s3://bucket/key`)."""
    headers = {"Accept": FORMATS[kind]}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT)
    outcome = Outcome()
    try:
        with http.stream("GET", url, params=params, headers=headers) as response:
            if response.status_code != 200:
                raise ExportFailed(_refusal(response))
            chunks = _chunks_of(response.iter_bytes(), outcome)
            if output.startswith("s3://"):
                _to_s3(output, _Reader(chunks), kind, outcome)
            elif output == "-":
                _to_stream(sys.stdout.buffer, chunks, kind, outcome)
            else:
                _to_file(Path(output), chunks, kind, outcome)
    except httpx.HTTPError as exc:
        raise ExportFailed(f"{url}: {type(exc).__name__}: {exc}; nothing was written") from exc
    finally:
        if own:
            http.close()
    return outcome


def _check_whole(kind: str, outcome: Outcome) -> None:
    if kind == "parquet" and outcome.tail != PARQUET_MAGIC:
        raise ExportFailed(
            f"the export ended after {outcome.size} bytes without the Parquet footer (the "
            "server failed mid-way; see its log); nothing was kept, run it again"
        )


def _to_stream(out: BinaryIO, chunks: Iterator[bytes], kind: str, outcome: Outcome) -> None:
    for chunk in chunks:
        out.write(chunk)
    out.flush()
    _check_whole(kind, outcome)


def _to_file(path: Path, chunks: Iterator[bytes], kind: str, outcome: Outcome) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            _to_stream(out, chunks, kind, outcome)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _to_s3(output: str, body: _Reader, kind: str, outcome: Outcome) -> None:
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError("an s3:// output needs boto3: pip install 'slipstream[aws]'") from None
    where = urlsplit(output)
    bucket, key = where.netloc, where.path.lstrip("/")
    if not bucket or not key:
        raise ConfigError(f"{output!r}: write an S3 output as s3://BUCKET/KEY")

    class Checked:
        """Ends the upload with an error, so boto3 aborts it, when the export is not whole."""

        def read(self, size: int = -1) -> bytes:
            data = body.read(size)
            if not data:
                _check_whole(kind, outcome)
            return data

    client: Any = boto3.client("s3")  # AWS_ENDPOINT_URL and credentials as boto3 finds them
    try:
        client.upload_fileobj(Checked(), bucket, key)
    except (ExportFailed, httpx.HTTPError):
        raise
    except Exception as exc:  # credentials, a missing bucket, a refusal: boto3's own words
        raise ExportFailed(f"upload to {output}: {type(exc).__name__}: {exc}") from exc
