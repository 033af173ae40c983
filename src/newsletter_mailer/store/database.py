"""The workspace database: one SQLite file in WAL mode shared by send, serve and the suppression
commands, its schema, short transactions, and the per-issue send lock."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import AlreadySending, SchemaMismatch, StateLost
from ..workspace import private_dir, private_file

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "FileIdentity",
    "connect",
    "disk_full",
    "record_sent_issue",
    "release_reserve",
    "reserve_space",
    "salvage",
    "send_lock",
    "sent_issues",
    "transaction",
]

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
    # 3: suppression_removals (created by SCHEMA, as every new table is)
    "",
    # 4: deliveries.address COLLATE NOCASE (rebuilt by _addresses_ignore_case, which cannot be SQL here)
    "",
    # 5: a row's first attempt (the retry window is the send's, whichever worker retries), and the
    # log of messages handed over that a cap per hour counts, shared by every worker
    """
    ALTER TABLE deliveries ADD COLUMN first_try REAL NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS pacing_log (name TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS pacing_log_by_name ON pacing_log (name, at);
    """,
    # 6: signups, the signup mail log and bounce reports behind the store interface (their tables,
    # unchanged, are created by sqlite_rows.py's SCHEMA at every open, as they were before)
    "",
    # 7: a note beside a suppression's reason (the reasons are one vocabulary; "asked by phone" is
    # a manual one's note), kept in the record when the address is taken off the list
    """
    ALTER TABLE suppressions ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE suppression_removals ADD COLUMN entry_note TEXT NOT NULL DEFAULT '';
    """,
    # 8: each send's run with its --where filter (table ``runs``, created by SCHEMA), and the
    # deliveries state 'held' (a listed reader a run's --where left out; no column changes)
    "",
)
SCHEMA_VERSION = len(MIGRATIONS)

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
CREATE TABLE IF NOT EXISTS runs (issue TEXT NOT NULL, started REAL NOT NULL, filter TEXT NOT NULL DEFAULT '');
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


SENT_MARKER = "sent-issues"  # beside the database, outside it: survives the database's loss


def busy_timeout() -> float:
    """Seconds to wait for a database another process holds locked: 30.

    NEWSLETTER_DB_BUSY_TIMEOUT is a test hook, not a setting (undocumented, and only a positive
    number counts): the locked-database tests would otherwise wait 30 s each.
    """
    try:
        seconds = float(os.environ.get("NEWSLETTER_DB_BUSY_TIMEOUT", ""))
    except ValueError:
        return 30.0
    return seconds if 0 < seconds < 30 else 30.0


def connect(path: Path, *, new: bool = False) -> sqlite3.Connection:
    """The workspace database, shared by send, serve and the suppression commands.

    A missing database in a workspace that has sent before is an error (StateLost), unless
    ``new``: a fresh one would mail everyone again and forget every unsubscribe.
    """
    if not new and not path.exists() and (sent := sent_issues(path.parent)):
        raise StateLost(
            f"the database {path} is missing, but this workspace has sent {', '.join(sent)}: the record of "
            "who was sent what and every unsubscribe and bounce was in it. Restore it from a backup; only "
            "if it is truly gone, run `newsletter send --new-database` (every subscriber may be mailed again)"
        )
    private_file(path)
    wait = busy_timeout()
    db = sqlite3.connect(path, timeout=wait, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a killed process (what we guard against); only an OS crash may lose
    # the last commits, and then the Message-ID still lets receivers fold a duplicate.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
    db.executescript(SCHEMA)
    _addresses_ignore_case(db)
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


def _addresses_ignore_case(db: sqlite3.Connection) -> None:
    """A database made before addresses ignored case gets the NOCASE column: the table is rebuilt
    once, keeping one row per address and issue (a sent row before any other)."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'").fetchone()
    if "COLLATE NOCASE" in row[0]:
        return
    with transaction(db):
        db.execute("DROP INDEX IF EXISTS deliveries_by_state")
        db.execute("ALTER TABLE deliveries RENAME TO deliveries_before_nocase")
        # The table as it is (with any columns later versions added), the address now NOCASE.
        db.execute(re.sub(r"(?i)(\baddress\s+TEXT\s+NOT NULL)", r"\1 COLLATE NOCASE", row[0], count=1))
        db.execute("CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (issue, state, id)")
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
    path = private_dir(state_dir) / f"send-{issue}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            raise AlreadySending(
                f"another `newsletter send` of {issue} is running{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish, stop it, or help it with `newsletter send ISSUE --join`"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


RESERVE = "reserve"  # space held back during a send, freed to record what is in flight when the disk fills
RESERVE_BYTES = 256 * 1024


def reserve_space(state_dir: Path) -> None:
    """Hold back a little disk beside the database for the length of a send (see release_reserve)."""
    path = private_dir(state_dir) / RESERVE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)  # a disk too full for the reserve is too full to start a send
        raise
    os.close(fd)


def release_reserve(state_dir: Path) -> bool:
    """Free the reserve, so that the outcome of messages the relay already took can still be written
    when the disk is full; False if there was none left to free."""
    try:
        (state_dir / RESERVE).unlink()
    except FileNotFoundError:
        return False
    return True


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


def describe_fault(exc: sqlite3.Error | OSError) -> str:
    """The one place that says an environment fault (database, disk, permissions) in a line."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"{where}the disk is full; free some space and run the same command again"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}cannot write here ({exc.strerror}); is the workspace read-only?"
        return f"{where}{exc.strerror or exc}"
    said = str(exc).lower()
    if "locked" in said or "busy" in said:
        return (
            f"the workspace database is locked by another process (waited {busy_timeout():g} s); "
            "try again when it is done"
        )
    if "readonly" in said or "unable to open" in said or "read-only" in said:
        return "cannot write the workspace database (.newsletter/newsletter.db); is the workspace read-only?"
    if "full" in said:
        return "the disk is full; free some space and run the same command again (nothing was half-written)"
    if "not a database" in said or "malformed" in said or "corrupt" in said:
        return f"the workspace database is damaged ({exc}); restore .newsletter/newsletter.db from a backup"
    return f"the workspace database failed: {exc}"


def sent_issues(state_dir: Path) -> list[str]:
    """The issues this workspace has started sending, from the marker beside the database."""
    try:
        text = (state_dir / SENT_MARKER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.split("\t", 1)[0] for line in text.splitlines() if line.strip()]


def record_sent_issue(state_dir: Path, issue: str) -> None:
    """Note, before its first message goes out, that this workspace sends ``issue``."""
    if issue in sent_issues(state_dir):
        return
    path = private_file(state_dir / SENT_MARKER)
    with path.open("a", encoding="utf-8") as marker:
        marker.write(f"{issue}\t{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        marker.flush()
        os.fsync(marker.fileno())


@dataclass(frozen=True)
class FileIdentity:
    """Which file a path named when it was opened; a deleted or replaced database has another."""

    path: Path
    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        st = path.stat()
        return cls(path, st.st_dev, st.st_ino)

    def lost(self) -> str:
        """ "" while the path still names the file that was opened; else what happened to it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "deleted"
        return "" if (st.st_dev, st.st_ino) == (self.device, self.inode) else "replaced"


def salvage(db: sqlite3.Connection, identity: FileIdentity) -> Path:
    """Write the open (deleted or replaced) database out to a file, so its record is not lost with it.

    Back at its own path if that is free, else beside it.
    """
    target = identity.path
    if target.exists():
        target = target.with_name(f"{target.name}.saved-{time.strftime('%Y%m%dT%H%M%S')}")
    db.execute("VACUUM INTO ?", (str(private_file(target)),))
    return target
