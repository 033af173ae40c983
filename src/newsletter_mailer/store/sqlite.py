"""The default store: the workspace's SQLite file (WAL), holding the journal, the suppression
list, signups and bounce reports, with the send lock as a file lock beside it. Nothing to install
or run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import astuple
from pathlib import Path

from ..audience.suppressions import Removal, Suppression
from .base import JournalRow
from .database import SCHEMA_VERSION, connect, send_lock, transaction
from .journal import SQLiteJournal
from .sqlite_pool import SQLitePool
from .sqlite_rows import SCHEMA as ROWS_SCHEMA
from .sqlite_rows import SQLiteBounceRows, SQLiteSignupRows, SQLiteStateRows, request_numbers_never_reused

__all__ = ["SQLiteStore", "SQLiteSuppressionRows"]

_ROW_COLUMNS = (
    "issue, address, name, fields, line, state, attempts, last_reply, message_id, resent, listed, created,"
    " updated, sent_at"
)


class SQLiteSuppressionRows:
    """The suppression list's rows in a SQLite connection (addresses compare with NOCASE)."""

    db: sqlite3.Connection

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def add_suppression(self, entry: Suppression) -> bool:
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO suppressions (address, reason, source, created) VALUES (?, ?, ?, ?)",
            (entry.address, entry.reason, entry.source, entry.created),
        )
        return cursor.rowcount == 1

    def remove_suppression(self, address: str, note: str, when: float) -> Suppression | None:
        if self.db.in_transaction:  # part of a larger change (a confirmed signup): commit with it
            return self._remove_suppression(address, note, when)
        with transaction(self.db):  # the record and the removal together, or neither
            return self._remove_suppression(address, note, when)

    def _remove_suppression(self, address: str, note: str, when: float) -> Suppression | None:
        entry = self.get_suppression(address)
        if entry is not None:
            self.db.execute(
                "INSERT INTO suppression_removals (address, reason, source, created, removed, note)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (entry.address, entry.reason, entry.source, entry.created, when, note),
            )
            self.db.execute("DELETE FROM suppressions WHERE address = ?", (address,))
        return entry

    def iter_removals(self) -> Iterator[Removal]:
        for row in self.db.execute(
            "SELECT address, reason, source, created, removed, note FROM suppression_removals ORDER BY removed"
        ):
            yield Removal(Suppression(*row[:4]), row[4], row[5])

    def get_suppression(self, address: str) -> Suppression | None:
        row = self.db.execute(
            "SELECT address, reason, source, created FROM suppressions WHERE address = ?", (address,)
        ).fetchone()
        return Suppression(*row) if row else None

    def iter_suppressions(self) -> Iterator[Suppression]:
        for row in self.db.execute("SELECT address, reason, source, created FROM suppressions ORDER BY created"):
            yield Suppression(*row)

    def count_suppressions(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0])


class SQLiteStore(
    SQLiteJournal, SQLitePool, SQLiteSuppressionRows, SQLiteStateRows, SQLiteSignupRows, SQLiteBounceRows
):
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        super().__init__(db)
        self.path = path

    @classmethod
    def open(cls, path: Path, *, new: bool = False) -> SQLiteStore:
        """The workspace file; ``new`` allows a fresh one where one is missing after sends."""
        db = connect(path, new=new)
        db.executescript(ROWS_SCHEMA)
        request_numbers_never_reused(db)
        return cls(db, path)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return str(self.path)

    def send_lock(self, issue: str) -> AbstractContextManager[None]:
        return send_lock(self.path.parent, issue)

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> tuple[int, int]:
        # connect() has already brought the file up to date; say so.
        return SCHEMA_VERSION, self.schema_version()

    def journal_rows(self) -> Iterator[JournalRow]:
        for row in self.db.execute(f"SELECT {_ROW_COLUMNS}, id FROM deliveries ORDER BY issue, id"):
            values = list(row)
            values[9] = bool(values[9])  # SQLite keeps the flag as 0/1
            yield JournalRow(*values)

    def import_journal_rows(self, rows: Iterable[JournalRow]) -> tuple[int, int, int]:
        inserted = seen = 0
        clashes: list[JournalRow] = []  # their number is another row's: numbered after the rest
        with transaction(self.db):
            for row in rows:
                seen += 1
                if self.db.execute(
                    f"INSERT OR IGNORE INTO deliveries ({_ROW_COLUMNS}, id) VALUES ({', '.join('?' * 15)})",
                    (*astuple(row)[:-1], row.id or None),
                ).rowcount:
                    inserted += 1
                elif not self.db.execute(
                    "SELECT 1 FROM deliveries WHERE issue = ? AND address = ?", (row.issue, row.address)
                ).fetchone():
                    clashes.append(row)
            for row in clashes:
                self.db.execute(
                    f"INSERT INTO deliveries ({_ROW_COLUMNS}) VALUES ({', '.join('?' * 14)})", astuple(row)[:-1]
                )
        return inserted + len(clashes), seen - inserted - len(clashes), len(clashes)
