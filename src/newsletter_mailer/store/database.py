"""The workspace database: one SQLite file in WAL mode shared by send, serve and the suppression
commands, its schema, short transactions, and the per-issue send lock."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AlreadySending
from ..workspace import private_dir, private_file

__all__ = ["SCHEMA", "connect", "send_lock", "transaction"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id           INTEGER PRIMARY KEY,
    issue        TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    fields       TEXT    NOT NULL DEFAULT '',
    line         INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT    NOT NULL DEFAULT '',
    message_id   TEXT    NOT NULL DEFAULT '',
    resent       INTEGER NOT NULL DEFAULT 0,
    listed       REAL    NOT NULL DEFAULT 0,
    created      REAL    NOT NULL,
    updated      REAL    NOT NULL,
    sent_at      REAL,
    UNIQUE (issue, address)
);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (issue, state, id);
CREATE TABLE IF NOT EXISTS suppressions (
    address  TEXT PRIMARY KEY COLLATE NOCASE,
    reason   TEXT NOT NULL,
    source   TEXT NOT NULL DEFAULT '',
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS suppression_removals (
    address  TEXT NOT NULL COLLATE NOCASE,
    reason   TEXT NOT NULL,
    source   TEXT NOT NULL DEFAULT '',
    created  REAL NOT NULL,
    removed  REAL NOT NULL,
    note     TEXT NOT NULL DEFAULT ''
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """The workspace database, shared by send, serve and the suppression commands."""
    private_file(path)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a killed process (what we guard against); only an OS crash may lose
    # the last commits, and then the Message-ID still lets receivers fold a duplicate.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(SCHEMA)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def send_lock(state_dir: Path, issue: str) -> Iterator[None]:
    """Only one send of an issue at a time; the OS drops the lock if the process dies."""
    path = private_dir(state_dir) / f"send-{issue}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            raise AlreadySending(
                f"another `newsletter send` of {issue} is running{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
