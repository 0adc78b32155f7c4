"""A full disk is told apart from other failures, named, and watched until space returns.

The full disk itself is the e2e test's (tests/e2e/test_disk_full.py, on a tmpfs it fills)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import duckdb
import pytest

from slipstream import disk
from slipstream.disk import DiskFull, DiskWatch, has_room, says_full


def test_a_full_disk_in_any_library_s_words() -> None:
    assert says_full(OSError(errno.ENOSPC, "No space left on device"))
    assert says_full(sqlite3.OperationalError("database or disk is full"))
    assert says_full(
        duckdb.TransactionException(
            'Failed to commit: Could not write file "w.duckdb.wal": No space left on device'
        )
    )
    wrapped = sqlite3.InterfaceError("bad parameter or other API misuse")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert says_full(wrapped)  # the cause counts
    assert not says_full(sqlite3.OperationalError("database is locked"))


def test_a_disk_with_room_has_room_and_leaves_nothing_behind(tmp_path: Path) -> None:
    assert has_room(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert has_room(tmp_path / "missing")  # no verdict on space: not counted as full


def test_the_watch_names_the_file_and_clears_when_room_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = DiskWatch(tmp_path / "queue.db")
    assert watch.explain(sqlite3.OperationalError("database is locked")) is None
    assert not watch.full
    watch.check()

    message = watch.explain(sqlite3.OperationalError("database or disk is full"))
    assert message is not None
    assert message.startswith(f"disk full: {tmp_path / 'queue.db'} (")
    assert "free on its volume" in message
    with pytest.raises(DiskFull, match="disk full"):
        watch.check()  # within RECHECK of the failure: no new look at the disk

    monkeypatch.setattr(disk, "RECHECK", 0.0)
    watch.check()  # this disk has room: the state clears
    assert not watch.full
