"""The files an import names: local paths, directories and glob patterns, `s3://` objects,
prefixes and patterns (pyarrow's S3 filesystem: credentials, region and `AWS_ENDPOINT_URL` as
the AWS tools find them), and `https://` (or `http://`) files, downloaded first to a temporary
file (streamed to disk: Parquet needs to seek, and a download cut short must not pass for a
whole file)."""

from __future__ import annotations

import fnmatch
import glob
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import pyarrow as pa
import pyarrow.fs as pafs

from slipstream.errors import ConfigError

PATTERN = frozenset("*?[")
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, read=300.0)


@dataclass(frozen=True)
class Source:
    """One file to import, wherever it lies."""

    filesystem: pafs.FileSystem
    path: str  # in `filesystem`
    uri: str  # as the user would name it: shown, and the checkpoint's key
    size: int
    changed: int | None  # modification time (ns), where the filesystem keeps one

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def _local(path: Path, uri: str | None = None) -> Source:
    stat, where = path.stat(), str(path.resolve())  # the same file from any directory
    return Source(pafs.LocalFileSystem(), where, uri or where, stat.st_size, stat.st_mtime_ns)


def _local_files(argument: str) -> list[Source]:
    path = Path(argument)
    if PATTERN & set(argument):
        files = [Path(p) for p in sorted(glob.glob(argument, recursive=True))]
        found = [_local(p) for p in files if p.is_file()]
        if not found:
            raise ConfigError(f"{argument}: no file matches")
        return found
    if path.is_dir():
        return [_local(p) for p in sorted(path.iterdir()) if p.is_file() and p.name[0] != "."]
    if path.is_file():
        return [_local(path)]
    raise ConfigError(f"{argument}: no such file or directory")


def _s3_files(argument: str) -> list[Source]:
    """An object, every object under a prefix (`s3://bucket/2025/`), or those matching a
    pattern (`s3://bucket/2025/*.parquet`, matched on the whole key)."""
    rest = argument.removeprefix("s3://")
    head = rest.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    base = head if not PATTERN & set(rest) else head.rsplit("/", 1)[0]
    try:
        filesystem, _ = pafs.FileSystem.from_uri(f"s3://{base}")
        info = filesystem.get_file_info(base)
        if PATTERN & set(rest) or info.type == pafs.FileType.Directory:
            infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        else:
            infos = [info]
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{argument}: {exc}") from None
    found = [
        Source(filesystem, i.path, f"s3://{i.path}", i.size or 0, i.mtime_ns)
        for i in sorted(infos, key=lambda i: i.path)
        if i.type == pafs.FileType.File
        and (not PATTERN & set(rest) or fnmatch.fnmatch(i.path, rest))
    ]
    if not found:
        raise ConfigError(f"{argument}: no object there")
    return found


def _download(url: str, folder: Path) -> Source:
    target = folder / (PurePosixPath(httpx.URL(url).path).name or "download")
    try:
        with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as answer:
            if answer.status_code != 200:
                raise ConfigError(f"{url}: the server answered {answer.status_code}")
            with target.open("wb") as out:
                for chunk in answer.iter_bytes():
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ConfigError(f"{url}: {type(exc).__name__}: {exc}") from None
    local = _local(target, uri=url)
    return Source(local.filesystem, local.path, url, local.size, None)  # keyed by URL and size


def sources(arguments: list[str], stack: ExitStack) -> Iterator[Source]:
    """Each file of `arguments`, once, in order; downloads live as long as `stack`."""
    seen: set[str] = set()
    folder: Path | None = None
    for argument in arguments:
        if argument.startswith("s3://"):
            found = _s3_files(argument)
        elif argument.startswith(("https://", "http://")):
            if folder is None:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="import-")))
            found = [_download(argument, folder)]
        elif "://" in argument:
            raise ConfigError(f"{argument}: an import reads local files, s3:// and https://")
        else:
            found = _local_files(argument)
        for source in found:
            if source.uri not in seen:
                seen.add(source.uri)
                yield source
