"""The default store: the workspace's SQLite file (WAL), holding the journal, the suppression
list, signups and bounce reports, with the send lock as a file lock beside it. Nothing to install
or run. The SQL is sql.py's; this is what a file has that a server does not."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from .database import FileIdentity, connect, record_sent_issue, release_reserve, reserve_space, salvage, send_lock
from .dialect import SQLITE
from .faults import mapped
from .schema import VERSION, sqlite_version
from .sql import SQLStore

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLStore):
    db: sqlite3.Connection

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._attach(db, SQLITE)
        self.path = path
        self.state_dir = path.parent
        self.identity = FileIdentity.of(path)  # which file this is: a send stops if it is replaced

    @classmethod
    def open(cls, path: Path, *, new: bool = False) -> SQLiteStore:
        """The workspace file (migrated as it opens); ``new`` allows a fresh one where one is
        missing after sends."""
        return cls(connect(path, new=new), path)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self.db.close()

    def another(self) -> SQLiteStore:
        """A second connection to the same file (a sender's writer of outcomes runs beside its claims)."""
        return SQLiteStore.open(self.path)

    def parallel_sessions(self) -> int:
        return 1  # one writer at a time, and no round trip to hide

    def for_sending(self) -> None:
        pass  # every connection to the file already commits with synchronous=NORMAL (database.py)

    def send_lock(self, issue: str) -> AbstractContextManager[None]:
        return send_lock(self.state_dir, issue)

    def schema_version(self) -> int:
        with mapped():
            return sqlite_version(self.db)

    def migrate(self) -> tuple[int, int]:
        # connect() has already brought the file up to date; say so.
        return VERSION, self.schema_version()

    # The file under a send

    def start_sending(self, issue: str) -> None:
        with mapped():
            record_sent_issue(self.state_dir, issue)
            reserve_space(self.state_dir)

    def free_reserve(self) -> bool:
        with mapped():
            return release_reserve(self.state_dir)

    def lost(self) -> str:
        return self.identity.lost()

    def salvage_if_lost(self) -> Path | None:
        if not self.identity.lost():
            return None
        with mapped():
            return salvage(self.db, self.identity)
