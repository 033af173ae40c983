"""Signups in the workspace database: requests waiting for their confirmation link, confirmed
signups with their consent record, and the log of confirmation mails the rate limits read.

A request is kept apart from the confirmed signup, so a stranger who types someone's address
into the form can change nothing about that person until the link in their inbox is used.
"""

from __future__ import annotations

import csv
import itertools
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from ..audience.signup import Tally, field_key, merge_lists
from ..audience.subscribers import Subscriber, address_key
from ..audience.suppressions import SuppressionList
from .database import transaction
from .journal import fields_of
from .sqlite import SQLiteSuppressionRows

__all__ = ["CONSENT_COLUMNS", "SCHEMA", "Consent", "PendingSignup", "SignupLog", "export_list"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS signup_requests (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL COLLATE NOCASE,
    name        TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL DEFAULT '',
    requested   REAL NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    wording     TEXT NOT NULL DEFAULT ''
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
"""


@dataclass(frozen=True)
class PendingSignup:
    id: int
    address: str
    requested: float


@dataclass(frozen=True)
class Consent:
    """A confirmed signup: who, and the record of their consent."""

    subscriber: Subscriber
    requested: float
    request_ip: str
    confirmed: float
    confirm_ip: str
    wording: str


class SignupLog:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def may_mail(self, address: str, ip: str, *, per_address_per_day: int, per_ip_per_hour: int) -> bool:
        """Whether another confirmation mail may go out; if so it is counted now."""
        now = time.time()
        with transaction(self.db):
            to_address = self.db.execute(
                "SELECT COUNT(*) FROM signup_mails WHERE address = ? AND sent > ?", (address, now - 86400)
            ).fetchone()[0]
            from_ip = self.db.execute(
                "SELECT COUNT(*) FROM signup_mails WHERE ip = ? AND sent > ?", (ip, now - 3600)
            ).fetchone()[0]
            if to_address >= per_address_per_day or from_ip >= per_ip_per_hour:
                return False
            self.db.execute("INSERT INTO signup_mails (address, ip, sent) VALUES (?, ?, ?)", (address, ip, now))
            self.db.execute("DELETE FROM signup_mails WHERE sent < ?", (now - 7 * 86400,))
        return True

    def request(self, subscriber: Subscriber, ip: str, wording: str) -> PendingSignup:
        now = time.time()
        fields = json.dumps(subscriber.fields, ensure_ascii=False) if subscriber.fields else ""
        with transaction(self.db):
            cursor = self.db.execute(
                "INSERT INTO signup_requests (address, name, fields, requested, ip, wording) VALUES (?, ?, ?, ?, ?, ?)",
                (subscriber.email, subscriber.name, fields, now, ip, wording),
            )
        return PendingSignup(int(cursor.lastrowid or 0), subscriber.email, now)

    def pending(self, request_id: int) -> PendingSignup | None:
        row = self.db.execute(
            "SELECT id, address, requested FROM signup_requests WHERE id = ?", (request_id,)
        ).fetchone()
        return PendingSignup(int(row[0]), str(row[1]), float(row[2])) if row else None

    def confirm(self, request_id: int, ip: str) -> str | None:
        """Turn a request into a signup (and lift any suppression: the link proves the mailbox
        works and the person wants the mail). Returns the address, or None if already used."""
        with transaction(self.db):
            row = self.db.execute(
                "SELECT address, name, fields, requested, ip, wording FROM signup_requests WHERE id = ?", (request_id,)
            ).fetchone()
            if row is None:
                return None
            self.db.execute(
                "INSERT INTO signups (address, name, fields, requested, request_ip, confirmed, confirm_ip, wording)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET name = excluded.name,"
                " fields = excluded.fields, requested = excluded.requested, request_ip = excluded.request_ip,"
                " confirmed = excluded.confirmed, confirm_ip = excluded.confirm_ip, wording = excluded.wording",
                (*row[:5], time.time(), ip, row[5]),
            )
            self.db.execute("DELETE FROM signup_requests WHERE address = ?", (row[0],))
            SuppressionList(SQLiteSuppressionRows(self.db)).remove(str(row[0]), "signed up again and confirmed")
        return str(row[0])

    def confirmed(self) -> list[Consent]:
        return [
            Consent(Subscriber(row[0], row[1], fields_of(row[2])), row[3], row[4], row[5], row[6], row[7])
            for row in self.db.execute(
                "SELECT address, name, fields, requested, request_ip, confirmed, confirm_ip, wording"
                " FROM signups ORDER BY confirmed"
            )
        ]

    def expire(self, older_than: float) -> int:
        """Forget requests never confirmed (they hold an address someone typed, nothing more)."""
        with transaction(self.db):
            return self.db.execute("DELETE FROM signup_requests WHERE requested < ?", (older_than,)).rowcount


CONSENT_COLUMNS = ("source", "requested", "request_ip", "confirmed", "confirm_ip", "wording_version")


def _cell(value: str) -> str:
    """A value safe in a spreadsheet: one that would start a formula is prefixed with '."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def export_list(db: sqlite3.Connection, csv_rows: Iterable[Subscriber], out: TextIO, extra: Iterable[str]) -> int:
    """Write the effective list (the CSV plus confirmed signups, minus suppressions) with the
    consent record of each signup; returns the number of rows written."""
    consents = {address_key(c.subscriber.email): c for c in SignupLog(db).confirmed()}
    suppressed = SuppressionList(SQLiteSuppressionRows(db))
    rows = iter(merge_lists(csv_rows, [c.subscriber for c in consents.values()], Tally()))
    first = next(rows, None)
    keys = list(dict.fromkeys([*(k for k, _ in (first.fields if first else ())), *map(field_key, extra)]))
    writer = csv.writer(out)
    writer.writerow(["email", "name", *keys, *CONSENT_COLUMNS])
    written = 0
    for subscriber in itertools.chain([first] if first else [], rows):
        if subscriber.email in suppressed:
            continue
        values = dict(subscriber.fields)
        consent = consents.get(address_key(subscriber.email))
        record = ["csv", "", "", "", "", ""]
        if consent is not None:
            record = [
                "signup" if consent.subscriber is subscriber else "csv+signup",
                _stamp(consent.requested),
                consent.request_ip,
                _stamp(consent.confirmed),
                consent.confirm_ip,
                consent.wording,
            ]
        cells = [subscriber.email, subscriber.name, *(values.get(k, "") for k in keys), *record]
        writer.writerow([_cell(c) for c in cells])
        written += 1
    return written
