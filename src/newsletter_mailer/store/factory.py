"""Open the store the settings name: the workspace's SQLite file by default, or PostgreSQL when
``[store] url`` or NEWSLETTER_STORE_URL gives a ``postgresql://`` URL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ..audience.subscribers import Subscriber
from ..config import Settings
from ..errors import StoreError
from .base import Store
from .database import describe_fault
from .signup_log import SignupLog
from .sqlite import SQLiteStore

__all__ = [
    "confirmed_signups",
    "describe_store_fault",
    "environment_faults",
    "open_store",
    "open_url",
]


def environment_faults() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the machine or the store failed, not the user and not a bug:
    the CLI says them in one line (``describe_store_fault``) instead of a traceback."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error, OSError)
    return (sqlite3.Error, OSError, psycopg.Error)


def describe_store_fault(exc: BaseException) -> str:
    if isinstance(exc, (sqlite3.Error, OSError)):
        return describe_fault(exc)
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return (
        f"the PostgreSQL store failed ({reason}); what was recorded is kept: run the same command again "
        "when the store answers"
    )


def open_url(url: str, password: str = "", *, check: bool = True) -> Store:
    """A PostgreSQL store; ``check`` refuses a schema that is not the code's."""
    try:
        from .postgres import PostgresStore
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg 3 and libpq: pip install 'newsletter-mailer[postgres]'"
        ) from None
    return PostgresStore.open(url, password, check=check)


@contextmanager
def open_store(settings: Settings, *, check: bool = True, new_database: bool = False) -> Iterator[Store]:
    """The workspace's store, closed on leaving."""
    store: Store
    if settings.store.url:
        store = open_url(settings.store.url, settings.store.password, check=check)
    else:
        store = SQLiteStore.open(settings.database_path, new=new_database)
    try:
        yield store
    finally:
        store.close()


def confirmed_signups(store: Store) -> list[Subscriber]:
    """Confirmed signups, part of the list at send time."""
    return [signup.subscriber for signup in SignupLog(store).confirmed()]
