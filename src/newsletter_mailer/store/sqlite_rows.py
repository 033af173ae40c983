"""Signups, bounce reports and the record of suppression removals in the workspace's SQLite file
(the rows of rows.py's protocols). SCHEMA creates their tables at every open, as database.py's
does for the journal's; addresses compare with NOCASE."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple

from ..audience.suppressions import Removal
from .database import transaction
from .rows import BounceRecord, SignupMail, SignupRequest, SignupRow

__all__ = ["SCHEMA", "SQLiteBounceRows", "SQLiteSignupRows", "SQLiteStateRows", "request_numbers_never_reused"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS signup_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    address     TEXT NOT NULL COLLATE NOCASE,
    name        TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL DEFAULT '',
    requested   REAL NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    wording     TEXT NOT NULL DEFAULT '',
    nonce       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS signups (
    address     TEXT PRIMARY KEY COLLATE NOCASE,
    name        TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL DEFAULT '',
    requested   REAL NOT NULL,
    request_ip  TEXT NOT NULL DEFAULT '',
    confirmed   REAL NOT NULL,
    confirm_ip  TEXT NOT NULL DEFAULT '',
    wording     TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS signup_mails (
    address     TEXT NOT NULL COLLATE NOCASE,
    ip          TEXT NOT NULL,
    sent        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signup_mails_by_address ON signup_mails (address, sent);
CREATE INDEX IF NOT EXISTS signup_mails_by_ip ON signup_mails (ip, sent);
CREATE TABLE IF NOT EXISTS bounce_reports (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    received     REAL NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    address      TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    issue        TEXT NOT NULL DEFAULT '',
    category     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT '',
    diagnostic   TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bounce_reports_by_address ON bounce_reports (address, category, received);
CREATE INDEX IF NOT EXISTS bounce_reports_by_issue ON bounce_reports (issue);
"""
_REQUEST = "id, address, name, fields, requested, ip, wording, nonce"
_SIGNUP = "address, name, fields, requested, request_ip, confirmed, confirm_ip, wording"
_BOUNCE = "address, issue, category, status, diagnostic, action, received, fingerprint, source"


def request_numbers_never_reused(db: sqlite3.Connection) -> None:
    """A file made before schema 7 numbered signup requests with a plain INTEGER PRIMARY KEY, which
    hands the number of the newest request, once it is gone, to the next one (its link would then
    name another person's request): the table is rebuilt once with AUTOINCREMENT and the nonce
    column, keeping every row and its number."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'signup_requests'").fetchone()
    if "AUTOINCREMENT" in row[0]:
        return
    with transaction(db):
        db.execute("ALTER TABLE signup_requests RENAME TO signup_requests_before_7")
        db.execute(SCHEMA[: SCHEMA.index(");") + 2])
        db.execute(
            "INSERT INTO signup_requests (id, address, name, fields, requested, ip, wording)"
            " SELECT id, address, name, fields, requested, ip, wording FROM signup_requests_before_7"
        )
        db.execute("DROP TABLE signup_requests_before_7")


class SQLiteStateRows:
    """What the signup and bounce logs share: the exclusive transaction, and (for ``store copy``)
    the record of suppression removals."""

    db: sqlite3.Connection

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.db.in_transaction:  # part of a larger change: commit with it
            yield
            return
        with transaction(self.db):  # BEGIN IMMEDIATE: the write lock is taken before anything is read
            yield

    def add_removal(self, removal: Removal) -> bool:
        entry = removal.entry
        values = (entry.address, entry.reason, entry.source, entry.created, removal.removed, removal.note)
        cursor = self.db.execute(
            "INSERT INTO suppression_removals (address, reason, source, created, removed, note)"
            " SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM suppression_removals WHERE address = ?"
            " AND reason = ? AND source = ? AND created = ? AND removed = ? AND note = ?)",
            values + values,
        )
        return cursor.rowcount == 1


class SQLiteSignupRows:
    db: sqlite3.Connection

    def add_signup_request(self, request: SignupRequest) -> int:
        cursor = self.db.execute(
            f"INSERT OR IGNORE INTO signup_requests ({_REQUEST}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (request.id or None, *astuple(request)[1:]),
        )
        return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else 0

    def get_signup_request(self, request_id: int) -> SignupRequest | None:
        row = self.db.execute(f"SELECT {_REQUEST} FROM signup_requests WHERE id = ?", (request_id,)).fetchone()
        return SignupRequest(*row) if row else None

    def iter_signup_requests(self) -> Iterator[SignupRequest]:
        for row in self.db.execute(f"SELECT {_REQUEST} FROM signup_requests ORDER BY id").fetchall():
            yield SignupRequest(*row)

    def delete_signup_requests(self, address: str) -> int:
        return self.db.execute("DELETE FROM signup_requests WHERE address = ?", (address,)).rowcount

    def expire_signup_requests(self, before: float) -> int:
        return self.db.execute("DELETE FROM signup_requests WHERE requested < ?", (before,)).rowcount

    def add_signup(self, signup: SignupRow, *, replace: bool = False) -> bool:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        cursor = self.db.execute(f"{verb} INTO signups ({_SIGNUP}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple(signup))
        return cursor.rowcount == 1

    def iter_signups(self) -> Iterator[SignupRow]:
        for row in self.db.execute(f"SELECT {_SIGNUP} FROM signups ORDER BY confirmed").fetchall():
            yield SignupRow(*row)

    def count_signup_mails(self, since: float, *, address: str = "", ip: str = "") -> int:
        column, value = ("address", address) if address else ("ip", ip)
        row = self.db.execute(f"SELECT COUNT(*) FROM signup_mails WHERE {column} = ? AND sent > ?", (value, since))
        return int(row.fetchone()[0])

    def add_signup_mail(self, mail: SignupMail) -> bool:
        cursor = self.db.execute(
            "INSERT INTO signup_mails (address, ip, sent) SELECT ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM signup_mails WHERE address = ? AND ip = ? AND sent = ?)",
            astuple(mail) * 2,
        )
        return cursor.rowcount == 1

    def forget_signup_mails(self, before: float) -> None:
        self.db.execute("DELETE FROM signup_mails WHERE sent < ?", (before,))

    def iter_signup_mails(self) -> Iterator[SignupMail]:
        for row in self.db.execute("SELECT address, ip, sent FROM signup_mails ORDER BY sent").fetchall():
            yield SignupMail(*row)


class SQLiteBounceRows:
    db: sqlite3.Connection

    def has_bounce_report(self, fingerprint: str) -> bool:
        return bool(self.db.execute("SELECT 1 FROM bounce_reports WHERE fingerprint = ?", (fingerprint,)).fetchone())

    def add_bounce_report(self, record: BounceRecord) -> bool:
        cursor = self.db.execute(
            f"INSERT OR IGNORE INTO bounce_reports ({_BOUNCE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(record)
        )
        return cursor.rowcount == 1

    def bounce_reports_about(self, address: str, category: str, since: float) -> list[BounceRecord]:
        rows = self.db.execute(
            f"SELECT {_BOUNCE} FROM bounce_reports WHERE address = ? AND category = ? AND received >= ? ORDER BY id",
            (address, category, since),
        )
        return [BounceRecord(*row) for row in rows]

    def bounce_reports_for_issue(self, issue: str) -> list[BounceRecord]:
        rows = self.db.execute(f"SELECT {_BOUNCE} FROM bounce_reports WHERE issue = ? ORDER BY id", (issue,))
        return [BounceRecord(*row) for row in rows]

    def iter_bounce_reports(self) -> Iterator[BounceRecord]:
        for row in self.db.execute(f"SELECT {_BOUNCE} FROM bounce_reports ORDER BY id").fetchall():
            yield BounceRecord(*row)

    def recipient_of_row(self, row: int) -> tuple[str, str] | None:
        return self._recipient("WHERE id = ?", row)

    def recipient_of_message(self, message_id: str) -> tuple[str, str] | None:
        return self._recipient("WHERE message_id = ?", message_id)

    def last_mailed(self, address: str) -> tuple[str, str] | None:
        # SQLite sorts NULL (never sent) first, so last in descending order.
        return self._recipient("WHERE address = ? ORDER BY sent_at DESC", address)

    def _recipient(self, where: str, value: object) -> tuple[str, str] | None:
        found = self.db.execute(f"SELECT address, issue FROM deliveries {where} LIMIT 1", (value,)).fetchone()
        return (str(found[0]), str(found[1])) if found else None
