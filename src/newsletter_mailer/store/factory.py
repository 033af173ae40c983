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
from .bounce_log import BounceLog, BounceRecord
from .signup_log import SignupLog
from .sqlite import SQLiteStore

__all__ = ["bounce_reports", "confirmed_signups", "open_store", "open_url", "sqlite_connection"]


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


def sqlite_connection(store: Store) -> sqlite3.Connection:
    """The SQLite connection under the workspace store, for the state that is not behind the
    store interface yet (bounce reports and signups): a PostgreSQL store refuses it."""
    if isinstance(store, SQLiteStore):
        return store.db
    raise StoreError(
        "bounce reports and signups are kept in the workspace's SQLite file only for now; "
        "they do not work with [store] url yet"
    )


def confirmed_signups(store: Store) -> list[Subscriber]:
    """Confirmed signups, part of the list at send time. A PostgreSQL store holds none: the signup
    pages are not served with one (see web/subscribe.py)."""
    if isinstance(store, SQLiteStore):
        return [signup.subscriber for signup in SignupLog(store.db).confirmed()]
    return []


def bounce_reports(store: Store, issue: str) -> list[BounceRecord]:
    """The bounce reports recorded for an issue; a PostgreSQL store holds none yet."""
    if isinstance(store, SQLiteStore):
        return BounceLog(store.db).for_issue(issue)
    return []
