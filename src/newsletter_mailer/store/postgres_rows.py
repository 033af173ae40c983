"""Signups, bounce reports and the record of suppression removals in PostgreSQL (the rows of
rows.py's protocols; their tables are schema version 6 in postgres.py). Addresses compare by
``lower(address)``, as the unique indexes do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from typing import Any

import psycopg

from ..audience.suppressions import Removal
from .rows import BounceRecord, SignupMail, SignupRequest, SignupRow

__all__ = ["RAISE_SEQUENCE", "PostgresBounceRows", "PostgresSignupRows", "PostgresStateRows"]

_EXCLUSIVE_LOCK = 0x6E6C5F78  # the advisory lock every exclusive() block holds, whoever runs it
_REQUEST = "id, address, name, fields, requested, ip, wording, nonce"
# The numbers the store hands out next start above every number kept and every number it handed
# out before (only raised: a number whose row is gone is never handed out again).
RAISE_SEQUENCE = (
    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest((SELECT max(id) FROM {table}),"
    " pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass), 1))"
)
_SIGNUP = "address, name, fields, requested, request_ip, confirmed, confirm_ip, wording"
_BOUNCE = "address, issue, category, status, diagnostic, action, received, fingerprint, source"
Conn = psycopg.Connection[tuple[Any, ...]]


class PostgresStateRows:
    db: Conn

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_EXCLUSIVE_LOCK,))
            yield

    def add_removal(self, removal: Removal) -> bool:
        entry = removal.entry
        values = (entry.address, entry.reason, entry.source, entry.created, removal.removed, removal.note)
        cursor = self.db.execute(
            "INSERT INTO suppression_removals (address, reason, source, created, removed, note)"
            " SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM suppression_removals"
            " WHERE address = %s AND reason = %s AND source = %s AND created = %s AND removed = %s AND note = %s)",
            values + values,
        )
        return cursor.rowcount == 1


class PostgresSignupRows:
    db: Conn

    def add_signup_request(self, request: SignupRequest) -> int:
        if not request.id:
            row = self.db.execute(
                "INSERT INTO signup_requests (address, name, fields, requested, ip, wording, nonce)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                astuple(request)[1:],
            ).fetchone()
            return int(row[0]) if row else 0
        with self.db.transaction():
            row = self.db.execute(
                f"INSERT INTO signup_requests ({_REQUEST}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                astuple(request),
            ).fetchone()
            self.db.execute(RAISE_SEQUENCE.format(table="signup_requests"))
        return int(row[0]) if row else 0

    def get_signup_request(self, request_id: int) -> SignupRequest | None:
        row = self.db.execute(f"SELECT {_REQUEST} FROM signup_requests WHERE id = %s", (request_id,)).fetchone()
        return SignupRequest(*row) if row else None

    def iter_signup_requests(self) -> Iterator[SignupRequest]:
        for row in self.db.execute(f"SELECT {_REQUEST} FROM signup_requests ORDER BY id").fetchall():
            yield SignupRequest(*row)

    def delete_signup_requests(self, address: str) -> int:
        return self.db.execute("DELETE FROM signup_requests WHERE lower(address) = lower(%s)", (address,)).rowcount

    def expire_signup_requests(self, before: float) -> int:
        return self.db.execute("DELETE FROM signup_requests WHERE requested < %s", (before,)).rowcount

    def add_signup(self, signup: SignupRow, *, replace: bool = False) -> bool:
        update = (
            "UPDATE SET address = excluded.address, name = excluded.name, fields = excluded.fields,"
            " requested = excluded.requested, request_ip = excluded.request_ip, confirmed = excluded.confirmed,"
            " confirm_ip = excluded.confirm_ip, wording = excluded.wording"
        )
        cursor = self.db.execute(
            f"INSERT INTO signups ({_SIGNUP}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT ((lower(address))) DO {update if replace else 'NOTHING'}",
            astuple(signup),
        )
        return cursor.rowcount == 1

    def iter_signups(self) -> Iterator[SignupRow]:
        for row in self.db.execute(f"SELECT {_SIGNUP} FROM signups ORDER BY confirmed").fetchall():
            yield SignupRow(*row)

    def count_signup_mails(self, since: float, *, address: str = "", ip: str = "") -> int:
        if address:
            sql, value = "SELECT count(*) FROM signup_mails WHERE lower(address) = lower(%s) AND sent > %s", address
        else:
            sql, value = "SELECT count(*) FROM signup_mails WHERE ip = %s AND sent > %s", ip
        row = self.db.execute(sql, (value, since)).fetchone()
        return int(row[0]) if row else 0

    def add_signup_mail(self, mail: SignupMail) -> bool:
        cursor = self.db.execute(
            "INSERT INTO signup_mails (address, ip, sent) SELECT %s, %s, %s WHERE NOT EXISTS"
            " (SELECT 1 FROM signup_mails WHERE lower(address) = lower(%s) AND ip = %s AND sent = %s)",
            astuple(mail) * 2,
        )
        return cursor.rowcount == 1

    def forget_signup_mails(self, before: float) -> None:
        self.db.execute("DELETE FROM signup_mails WHERE sent < %s", (before,))

    def iter_signup_mails(self) -> Iterator[SignupMail]:
        for row in self.db.execute("SELECT address, ip, sent FROM signup_mails ORDER BY sent").fetchall():
            yield SignupMail(*row)


class PostgresBounceRows:
    db: Conn

    def has_bounce_report(self, fingerprint: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM bounce_reports WHERE fingerprint = %s", (fingerprint,)).fetchone()
            is not None
        )

    def add_bounce_report(self, record: BounceRecord) -> bool:
        cursor = self.db.execute(
            f"INSERT INTO bounce_reports ({_BOUNCE}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            astuple(record),
        )
        return cursor.rowcount == 1

    def bounce_reports_about(self, address: str, category: str, since: float) -> list[BounceRecord]:
        rows = self.db.execute(
            f"SELECT {_BOUNCE} FROM bounce_reports WHERE lower(address) = lower(%s) AND category = %s"
            " AND received >= %s ORDER BY id",
            (address, category, since),
        ).fetchall()
        return [BounceRecord(*row) for row in rows]

    def bounce_reports_for_issue(self, issue: str) -> list[BounceRecord]:
        rows = self.db.execute(f"SELECT {_BOUNCE} FROM bounce_reports WHERE issue = %s ORDER BY id", (issue,))
        return [BounceRecord(*row) for row in rows.fetchall()]

    def iter_bounce_reports(self) -> Iterator[BounceRecord]:
        for row in self.db.execute(f"SELECT {_BOUNCE} FROM bounce_reports ORDER BY id").fetchall():
            yield BounceRecord(*row)

    def recipient_of_row(self, row: int) -> tuple[str, str] | None:
        return self._recipient("WHERE id = %s", row)

    def recipient_of_message(self, message_id: str) -> tuple[str, str] | None:
        return self._recipient("WHERE message_id = %s", message_id)

    def last_mailed(self, address: str) -> tuple[str, str] | None:
        return self._recipient("WHERE lower(address) = lower(%s) ORDER BY sent_at DESC NULLS LAST", address)

    def _recipient(self, where: str, value: object) -> tuple[str, str] | None:
        found = self.db.execute(f"SELECT address, issue FROM deliveries {where} LIMIT 1", (value,)).fetchone()
        return (str(found[0]), str(found[1])) if found else None
