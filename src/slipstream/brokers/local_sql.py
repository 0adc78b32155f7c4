"""The embedded broker's SQLite schema and statements, and how a drained queue gives its pages
back (local.py runs them, on its one SQL thread)."""

from __future__ import annotations

import sqlite3

# Free pages (4 KiB each) a drained queue gives back to the disk. A flood leaves the file as
# large as its highest backlog; new files free pages on demand (auto_vacuum=INCREMENTAL), and
# the ack that empties the queue frees them once they pass this many.
RECLAIM_PAGES = 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    -- AUTOINCREMENT: a seq is never reused, so a stale handle can never name another message.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    published_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    events INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (dataset, visible_at, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    published_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL,
    events INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS dead_letters_by_dataset ON dead_letters (dataset, id);
"""
# `events`: how many events a row's message carries (a bundle's count, bundles.py), so that the
# backlog is counted in events. Files made before it get the column, 1 for what they hold.
EVENTS_COLUMN = "ALTER TABLE {table} ADD COLUMN events INTEGER NOT NULL DEFAULT 1"

# The oldest visible messages, by the time they became visible: the index serves the order, so a
# pull reads only `:n` rows whatever the backlog (strict seq order would sort every visible row).
WINDOW = """SELECT seq FROM messages WHERE dataset = :dataset AND visible_at <= :now
    {extra} ORDER BY visible_at, seq LIMIT :n"""
BURY_WORN = (
    "INSERT INTO dead_letters (dataset, key, data, attributes, published_at, deliveries, reason,"
    " dead_at, events) SELECT dataset, key, data, attributes, published_at, deliveries,"
    " 'delivered ' || deliveries || ' times without an ack (lease expired or nacked each time)',"
    " :now, events FROM messages WHERE seq IN ("
    + WINDOW.format(extra="")
    + ") AND deliveries >= :max"
    " ORDER BY seq"
)
DELETE_WORN = (
    "DELETE FROM messages WHERE seq IN (" + WINDOW.format(extra="") + ") AND deliveries >= :max"
)
LEASE = (
    "UPDATE messages SET visible_at = :until, deliveries = deliveries + 1 WHERE seq IN ("
    + WINDOW.format(extra="AND deliveries < :max")
    + ") RETURNING seq, key, data, attributes, published_at, deliveries, events"
)
BURY_ONE = (
    "INSERT INTO dead_letters (dataset, key, data, attributes, published_at, deliveries, reason,"
    " dead_at, events) SELECT dataset, key, data, attributes, published_at, deliveries, ?, ?,"
    " events"
    " FROM messages WHERE dataset = ? AND seq = ?"
)
INSERT = (
    "INSERT INTO messages (dataset, key, data, attributes, published_at, visible_at, deliveries,"
    " events) VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
)
DELETE_ONE = "DELETE FROM messages WHERE dataset = ? AND seq = ?"
REPLAY = (
    "INSERT INTO messages (dataset, key, data, attributes, published_at, visible_at, deliveries,"
    " events) SELECT dataset, key, data, attributes, published_at, ?, 0, events FROM dead_letters"
    " WHERE dataset = ? {where} ORDER BY id"
)


def drained(db: sqlite3.Connection) -> bool:
    """Whether the queue (every dataset's) is empty and holds pages worth giving back."""
    if db.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None:
        return False
    return bool(db.execute("PRAGMA freelist_count").fetchone()[0] >= RECLAIM_PAGES)


def reclaim(db: sqlite3.Connection) -> None:
    """Give free pages back to the disk, so that a drained queue takes little room whatever
    backlog a flood built. Through `executescript`, which steps each pragma to its end (a plain
    `execute` frees one page). A file made before auto_vacuum was set keeps its pages (`PRAGMA
    auto_vacuum=INCREMENTAL; VACUUM` converts it)."""
    # The freed pages leave the file at the checkpoint, which also empties the log they went to.
    db.executescript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
