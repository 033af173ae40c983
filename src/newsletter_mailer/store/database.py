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

__all__ = ["SCHEMA", "connect", "send_lock", "transaction"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id           INTEGER PRIMARY KEY,
    issue        TEXT    NOT NULL,
    address      TEXT    NOT NULL COLLATE NOCASE,
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
"""


def connect(path: Path) -> sqlite3.Connection:
    """The workspace database, shared by send, serve and the suppression commands."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a killed process (what we guard against); only an OS crash may lose
    # the last commits, and then the Message-ID still lets receivers fold a duplicate.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(SCHEMA)
    _addresses_ignore_case(db)
    return db


def _addresses_ignore_case(db: sqlite3.Connection) -> None:
    """A database made before addresses ignored case gets the NOCASE column: the table is rebuilt
    once, keeping one row per address and issue (a sent row before any other)."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'").fetchone()
    if "COLLATE NOCASE" in row[0]:
        return
    with transaction(db):
        db.execute("DROP INDEX IF EXISTS deliveries_by_state")
        db.execute("ALTER TABLE deliveries RENAME TO deliveries_before_nocase")
        for statement in SCHEMA.split(";"):
            if "deliveries" in statement:  # executescript would commit the transaction first
                db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO deliveries SELECT * FROM deliveries_before_nocase ORDER BY state = 'sent' DESC, id"
        )
        db.execute("DROP TABLE deliveries_before_nocase")


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
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"send-{issue}.lock"
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
