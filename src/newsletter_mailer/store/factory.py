"""Open the store the settings name: the workspace's SQLite file by default, or PostgreSQL when
``[store] url`` or NEWSLETTER_STORE_URL gives a ``postgresql://`` URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import Settings
from ..errors import NewsletterError, StoreError
from .base import Store
from .database import sent_issues
from .faults import driver_errors, store_fault
from .sqlite import SQLiteStore

__all__ = [
    "describe_store_fault",
    "environment_faults",
    "existing_store",
    "open_store",
    "open_url",
]


def environment_faults() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the machine or the store failed, not the user and not a bug:
    the CLI says them in one line (``describe_store_fault``) instead of a traceback. The store
    raises only StoreError; a file the workspace writes beside it may still raise OSError."""
    return (StoreError, *driver_errors())


def describe_store_fault(exc: BaseException) -> str:
    """One line for a fault of the store or the machine (a StoreError says itself)."""
    return str(exc) if isinstance(exc, NewsletterError) else str(store_fault(exc))


def open_url(url: str, password: str = "", *, check: bool = True, state_dir: Path | None = None) -> Store:
    """A PostgreSQL store; ``check`` refuses a schema that is not the code's; ``state_dir``: the
    workspace's, where a send notes the issues it sent."""
    try:
        from .postgres import PostgresStore
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg 3 and libpq: pip install 'newsletter-mailer[postgres]'"
        ) from None
    return PostgresStore.open(url, password, check=check, state_dir=state_dir)


@contextmanager
def open_store(settings: Settings, *, check: bool = True, new_database: bool = False) -> Iterator[Store]:
    """The workspace's store, closed on leaving."""
    store: Store
    if settings.store.url:
        store = open_url(settings.store.url, settings.store.password, check=check, state_dir=settings.state_dir)
    else:
        store = SQLiteStore.open(settings.database_path, new=new_database)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def existing_store(settings: Settings) -> Iterator[Store | None]:
    """The store if one exists, else None: reading commands never create a SQLite file."""
    missing = not settings.store.url and not settings.database_path.exists()
    if missing and not sent_issues(settings.state_dir):  # else opening it says the state was lost
        yield None
        return
    with open_store(settings) as store:
        yield store
