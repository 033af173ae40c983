"""The workspace store as one object: the store the settings name (the SQLite file, or
PostgreSQL), with the suppression list on it, closed when the ``with`` block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..audience.suppressions import SuppressionList
from ..config import Settings
from . import factory
from .base import Store
from .database import sent_issues

__all__ = ["WorkspaceStore", "existing_store", "open_store"]


@dataclass(frozen=True)
class WorkspaceStore:
    journal: Store
    suppressions: SuppressionList


@contextmanager
def open_store(settings: Settings) -> Iterator[WorkspaceStore]:
    """The workspace's store, created on first use."""
    with factory.open_store(settings) as store:
        yield WorkspaceStore(store, SuppressionList(store))


@contextmanager
def existing_store(settings: Settings) -> Iterator[WorkspaceStore | None]:
    """The store if one exists, else None: reading commands never create a SQLite file."""
    missing = not settings.store.url and not settings.database_path.exists()
    if missing and not sent_issues(settings.state_dir):  # else opening it says the state was lost
        yield None
        return
    with open_store(settings) as store:
        yield store
