"""A full disk under an embedded database (the DuckDB store, the SQLite broker), named as such.

Database libraries report a full disk in their own words ("database or disk is full", "Could not
write file …: No space left on device"), and after one some report unrelated errors (SQLite's "bad
parameter or other API misuse"). So a failure is checked against the disk itself: a scratch file
beside the database must get room for about a batch. Once a disk is found full (by a failure, or
by a glance at its free blocks before any), calls fail at once with a message naming the file and
the free space, readiness says so, and the first check that finds room again (at most every
RECHECK seconds) clears the state: work resumes without a restart.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

from slipstream.errors import BackendUnavailable

ROOM = 1 << 20  # bytes a scratch file must get for the disk to count as usable (about a batch)
RECHECK = 0.5  # seconds between two checks of a disk found full
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# How database libraries word a full disk; anything else is asked of the disk itself.
_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class DiskFull(BackendUnavailable):
    """The volume of an embedded database has no room; the message names the file and free space."""


def free_bytes(directory: Path) -> int | None:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def has_room(directory: Path, size: int = ROOM) -> bool:
    """Whether a file in `directory` can get `size` bytes (reserved, then given back at once).

    Free-block counts alone can mislead (root's reserve, quotas); a reservation cannot. An error
    other than a full disk (permissions, a missing directory) says nothing about space: True."""
    try:
        fd, name = tempfile.mkstemp(prefix=".slipstream-room-", dir=directory)
    except OSError as exc:
        return exc.errno not in _FULL_ERRNOS
    try:
        _reserve(fd, size)
    except OSError as exc:
        return exc.errno not in _FULL_ERRNOS
    finally:
        os.close(fd)
        with suppress(OSError):
            os.unlink(name)
    return True


def _reserve(fd: int, size: int) -> None:
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
        return
    chunk = b"\0" * 65536  # where fallocate does not exist (macOS): write the bytes
    for _ in range(0, size, len(chunk)):
        os.write(fd, chunk)


def says_full(exc: BaseException) -> bool:
    """Whether a failure, or one it was raised from, reports a full disk in so many words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if any(words in str(seen).lower() for words in _FULL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _size(count: int | None) -> str:
    if count is None:
        return "unknown space"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


class DiskWatch:
    """Whether the disk under one database file is full, as last found; safe from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._full = False
        self._checked = 0.0

    @property
    def full(self) -> bool:
        return self._full

    def message(self) -> str:
        free = _size(free_bytes(self.path.parent))
        return (
            f"disk full: {self.path} ({free} free on its volume); free space there and "
            "work resumes by itself"
        )

    def explain(self, exc: BaseException) -> str | None:
        """The disk-full message when `exc` came of a full disk (its words, or no room found
        now), remembered until a check finds room; None for any other failure."""
        if not (says_full(exc) or not has_room(self.path.parent)):
            return None
        with self._lock:
            self._full, self._checked = True, time.monotonic()
        return self.message()

    def check(self) -> None:
        """Raise DiskFull while the disk has no room. A disk found full by a failure is looked
        at again, and any other glanced at (free blocks, then a reservation when they run
        short), at most every RECHECK seconds, so a disk that fills before any write fails is
        reported too."""
        now = time.monotonic()
        if now - self._checked >= RECHECK:
            with self._lock:
                if now - self._checked >= RECHECK:
                    self._checked = now
                    self._full = self._looks_full()
        if self._full:
            raise DiskFull(self.message())

    def _looks_full(self) -> bool:
        if not self._full:
            free = free_bytes(self.path.parent)
            if free is None or free >= ROOM:
                return False
        return not has_room(self.path.parent)
