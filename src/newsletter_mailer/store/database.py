"""The workspace database: one SQLite file in WAL mode shared by send, serve and the suppression
commands, its schema, short transactions, and the per-issue send lock."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AlreadySending, SchemaMismatch

__all__ = ["SCHEMA", "SCHEMA_VERSION", "connect", "send_lock", "transaction"]

# SCHEMA is idempotent and runs at every open; a change to an existing table goes in MIGRATIONS
# (version N+1 is MIGRATIONS[N]) with SCHEMA_VERSION raised, and the same in postgres.py.
MIGRATIONS: tuple[str, ...] = (
    "",
    # 2: several workers on one send (store/sqlite_pool.py)
    """
    ALTER TABLE deliveries ADD COLUMN worker TEXT NOT NULL DEFAULT '';
    ALTER TABLE deliveries ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS sends (issue TEXT PRIMARY KEY, content_hash TEXT NOT NULL, started REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS workers (
        issue TEXT NOT NULL, worker TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        sent INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL, last_seen REAL NOT NULL,
        PRIMARY KEY (issue, worker)
    );
    CREATE TABLE IF NOT EXISTS pacing (name TEXT PRIMARY KEY, next_at REAL NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

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
    _migrate(db, path)
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """The workspace file is one editor's: it is brought up to date on open (as it always was),
    but a file written by newer code is refused rather than misread."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        db.close()
        raise SchemaMismatch(
            f"{path}: the store's schema is version {version}, newer than this newsletter-mailer's "
            f"{SCHEMA_VERSION}: upgrade newsletter-mailer"
        )
    if version == SCHEMA_VERSION:
        return
    with transaction(db):
        for script in MIGRATIONS[version:]:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
