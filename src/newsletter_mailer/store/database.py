"""The workspace database as a file: one SQLite file in WAL mode shared by send, serve and the
suppression commands, opened with its schema up to date; the per-issue send lock beside it, the
marker of issues sent, the disk reserve, and the checks for a file deleted or replaced mid-send."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ..errors import AlreadySending, SchemaMismatch, StateLost
from ..workspace import private_dir, private_file
from .faults import busy_timeout, mapped, store_fault
from .schema import STEPS, VERSION, migrate_sqlite, sqlite_version

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "FileIdentity",
    "busy_timeout",
    "connect",
    "describe_fault",
    "record_sent_issue",
    "release_reserve",
    "reserve_space",
    "salvage",
    "send_lock",
    "sent_issues",
]

SCHEMA = str(STEPS[0].sqlite)  # the journal's first tables, as a file of version 1 holds them
SCHEMA_VERSION = VERSION


SENT_MARKER = "sent-issues"  # beside the database, outside it: survives the database's loss


def connect(path: Path, *, new: bool = False) -> sqlite3.Connection:
    """The workspace database, shared by send, serve and the suppression commands, its schema
    brought up to date (schema.py).

    A missing database in a workspace that has sent before is an error (StateLost), unless
    ``new``: a fresh one would mail everyone again and forget every unsubscribe.
    """
    if not new and not path.exists() and (sent := sent_issues(path.parent)):
        raise StateLost(
            f"the database {path} is missing, but this workspace has sent {', '.join(sent)}: the record of "
            "who was sent what and every unsubscribe and bounce was in it. Restore it from a backup; only "
            "if it is truly gone, run `newsletter send --new-database` (every subscriber may be mailed again)"
        )
    with mapped():
        private_file(path)
        wait = busy_timeout()
        db = sqlite3.connect(path, timeout=wait, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (what we guard against); only an OS crash may lose
            # the last commits, and then the Message-ID still lets receivers fold a duplicate.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            _migrate(db, path)
        except BaseException:
            db.close()
            raise
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """The workspace file is one editor's: it is brought up to date on open (as it always was),
    but a file written by newer code is refused rather than misread."""
    version = sqlite_version(db)
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path}: the store's schema is version {version}, newer than this newsletter-mailer's "
            f"{SCHEMA_VERSION}: upgrade newsletter-mailer"
        )
    migrate_sqlite(db)


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


def describe_fault(exc: BaseException) -> str:
    """An environment fault (database, disk, permissions) said in a line (faults.py)."""
    return str(store_fault(exc))


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
    try:
        db.execute("VACUUM INTO ?", (str(private_file(target)),))
    except BaseException:  # a full disk: no empty or partial file where the next run would look
        with suppress(OSError):
            target.unlink()
        raise
    return target
