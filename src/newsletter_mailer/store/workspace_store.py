"""The workspace store as one object: the database opened once, with the journal and the
suppression list on it, closed when the ``with`` block ends, whatever happens inside."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..audience.suppressions import SuppressionList
from ..config import Settings
from .database import connect
from .journal import SQLiteJournal

__all__ = ["WorkspaceStore", "existing_store", "open_store"]


@dataclass(frozen=True)
class WorkspaceStore:
    journal: SQLiteJournal
    suppressions: SuppressionList


@contextmanager
def open_store(settings: Settings) -> Iterator[WorkspaceStore]:
    """The workspace's database, created on first use."""
    db = connect(settings.database_path)
    try:
        yield WorkspaceStore(SQLiteJournal(db), SuppressionList(db))
    finally:
        db.close()


@contextmanager
def existing_store(settings: Settings) -> Iterator[WorkspaceStore | None]:
    """The database if one exists, else None: reading commands never create state."""
    if not settings.database_path.exists():
        yield None
        return
    with open_store(settings) as store:
        yield store
