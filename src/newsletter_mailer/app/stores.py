"""The store as a use case opens it: closed on leaving, and every driver or machine fault raised
inside mapped once to the package's StoreError (until store/ maps them at its own boundary)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Settings
from ..errors import NewsletterError, StoreError
from ..store import factory
from ..store.base import Store

__all__ = ["describe_fault", "existing_store", "faults_mapped", "opened_store", "unmapped_faults"]


@contextmanager
def faults_mapped() -> Iterator[None]:
    """A sqlite3, psycopg or OS error from the store becomes a StoreError that says what happened
    in one line; the package's own errors pass through as they are."""
    try:
        yield
    except NewsletterError:
        raise
    except factory.environment_faults() as exc:
        raise StoreError(factory.describe_store_fault(exc)) from exc


@contextmanager
def opened_store(settings: Settings, *, check: bool = True, new_database: bool = False) -> Iterator[Store]:
    """The workspace's store (created on first use), its faults mapped."""
    with faults_mapped(), factory.open_store(settings, check=check, new_database=new_database) as store:
        yield store


@contextmanager
def existing_store(settings: Settings) -> Iterator[Store | None]:
    """The store if one exists, else None: reading commands never create a SQLite file."""
    with faults_mapped(), factory.existing_store(settings) as store:
        yield store


def unmapped_faults() -> tuple[type[BaseException], ...]:
    """The machine's or the store's faults that reach an entry point without a use case to map
    them (raised while a command starts): it says them in one line with ``describe_fault``."""
    return factory.environment_faults()


def describe_fault(exc: BaseException) -> str:
    return factory.describe_store_fault(exc)
