"""The one place where a driver's or the file system's exception becomes the package's StoreError
tree (errors.py), as httpx maps httpcore's exceptions in one function: nothing outside store/
names sqlite3 or psycopg. Each message is one line that says what to do."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from ..errors import (
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)

__all__ = ["busy_timeout", "driver_errors", "mapped", "store_fault"]


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


@cache
def driver_errors() -> tuple[type[BaseException], ...]:
    """What a driver or the file system under a store raises."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error, OSError)
    return (sqlite3.Error, OSError, psycopg.Error)


def _os_fault(exc: OSError) -> StoreError:
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return StoreFull(f"{where}the disk is full; free some space and run the same command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreReadOnly(f"{where}cannot write here ({exc.strerror}); is the workspace read-only?")
    return StoreError(f"{where}{exc.strerror or exc}")


def _sqlite_fault(exc: sqlite3.Error) -> StoreError:
    said = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if "locked" in said or "busy" in said:
        return StoreLocked(
            f"the workspace database is locked by another process (waited {busy_timeout():g} s); "
            "try again when it is done"
        )
    if "readonly" in said or "unable to open" in said or "read-only" in said:
        return StoreReadOnly(
            "cannot write the workspace database (.newsletter/newsletter.db); is the workspace read-only?"
        )
    if code == sqlite3.SQLITE_FULL or "full" in said:
        return StoreFull("the disk is full; free some space and run the same command again (nothing was half-written)")
    if "not a database" in said or "malformed" in said or "corrupt" in said:
        return StoreCorrupt(
            f"the workspace database is damaged ({exc}); restore .newsletter/newsletter.db from a backup"
        )
    return StoreError(f"the workspace database failed: {exc}")


def _postgres_fault(exc: BaseException) -> StoreError:
    import psycopg
    from psycopg import errors as pg

    reason = " ".join(str(exc).split()) or type(exc).__name__
    said = (
        f"the PostgreSQL store failed ({reason}); what was recorded is kept: run the same command again "
        "when the store answers"
    )
    if isinstance(exc, pg.DiskFull):
        return StoreFull(said)
    if isinstance(exc, pg.ReadOnlySqlTransaction):
        return StoreReadOnly(said)
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable(said)
    return StoreError(said)


def store_fault(exc: BaseException) -> StoreError:
    """The StoreError that says ``exc`` (a StoreError stays as it is)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError):
        return _os_fault(exc)
    if isinstance(exc, sqlite3.Error):
        return _sqlite_fault(exc)
    return _postgres_fault(exc)


@contextmanager
def mapped() -> Iterator[None]:
    """Inside, a driver's or the file system's exception leaves as its StoreError."""
    try:
        yield
    except driver_errors() as exc:
        raise store_fault(exc) from exc
