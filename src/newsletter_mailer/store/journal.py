"""The send journal: one row per (issue, recipient) with its state, written in small
transactions, so a crash never skips anyone and resends at most the messages in flight.

States: pending -> sending -> sent | failed | suppressed; a temporary failure puts the row back
to pending, not to be claimed before its backoff is over; a pending row whose address is no longer
in the list is ``removed``. Rows are claimed by workers (store/sqlite_pool.py) under a lease: a row
found in ``sending`` whose lease is over was in flight when its worker stopped: it is sent again
and counted as possibly duplicated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..audience.subscribers import Subscriber
from .database import connect, transaction

STATES = ("pending", "sending", "sent", "failed", "suppressed", "removed", "held")


@dataclass(frozen=True)
class Failure:
    address: str
    attempts: int
    reply: str


@dataclass(frozen=True)
class IssueStatus:
    """What ``status`` shows: rows per state (plus ``resent``) and each failure."""

    issue: str
    counts: dict[str, int]
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class Delivery:
    id: int
    address: str
    name: str
    fields: tuple[tuple[str, str], ...]
    attempts: int = 0
    last_reply: str = ""
    resent: bool = False
    first_try: float = 0.0  # when the first attempt was claimed (epoch seconds, the store's clock)

    def subscriber(self) -> Subscriber:
        return Subscriber(email=self.address, name=self.name, fields=self.fields)


class Journal(Protocol):
    """What a dispatch needs from its journal; SQLite here, another database later."""

    def add_recipients(self, issue: str, subscribers: Iterable[Subscriber]) -> int: ...
    def hold(self, issue: str, addresses: Iterable[str]) -> int:
        """Mark these pending rows 'held': listed, but left out of this run by its --where (neither
        removed nor sent; the next run that loads the list makes them pending again)."""

    def record_run(self, issue: str, where: str) -> None:
        """Note that a send of the issue started, with its --where filter ("" for the whole list)."""

    def runs(self, issue: str) -> list[tuple[float, str]]:
        """Each run of the issue (when it started, its filter), oldest first."""

    def recover_in_flight(self, issue: str) -> int: ...
    def mark_sent(self, delivery: Delivery, message_id: str, reply: str) -> None: ...
    def mark_deferred(self, delivery: Delivery, reply: str, *, uncertain: bool, not_before: float = 0.0) -> None:
        """Back to pending after a temporary failure; no worker claims it before ``not_before``."""

    def mark_failed(self, delivery: Delivery, reply: str) -> None: ...
    def release(self, delivery: Delivery) -> None: ...
    def counts(self, issue: str) -> dict[str, int]: ...
    def pending_suppressed(self, issue: str) -> int: ...
    def suppressed_by_reason(self, issue: str) -> dict[str, int]: ...
    def state_of(self, issue: str, address: str) -> str | None: ...
    def failures(self, issue: str) -> list[tuple[str, int, str]]: ...
    def retry_failed(self, issue: str) -> int: ...
    def issues(self) -> list[tuple[str, float]]:
        """Every issue in the journal with when its list was first loaded, newest first."""

    def discard_unsent(self, issue: str) -> int:
        """Delete the issue's rows never tried (a send declined at its prompt), and its send record
        when no row is left; returns how many rows went."""


def fields_of(text: str) -> tuple[tuple[str, str], ...]:
    """A row's extra columns, as stored by ``_fields_json``."""
    return tuple((str(k), str(v)) for k, v in json.loads(text)) if text else ()


# What a claim returns for each row, in either store; ``skipped`` is true for a row it found
# suppressed (and marked so) instead of claiming it.
CLAIM_RETURNS = "id, address, name, fields, attempts, last_reply, resent, skipped, first_try"


def claimed_delivery(row: Sequence[Any]) -> Delivery:
    """A row a claim returned (CLAIM_RETURNS) as the Delivery a worker sends: its attempts are
    those before this one, which the claim counted."""
    return Delivery(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        fields_of(row[3]),
        int(row[4]) - 1,
        str(row[5]),
        bool(row[6]),
        float(row[8]),
    )


def _fields_json(fields: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")) if fields else ""


class SQLiteJournal:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path) -> SQLiteJournal:
        return cls(connect(path))

    def close(self) -> None:
        self.db.close()

    def add_recipients(self, issue: str, subscribers: Iterable[Subscriber]) -> int:
        """Load the list as it is now: new addresses become pending rows; pending rows whose
        address has left the list become ``removed`` (and pending again if it comes back).
        Returns how many addresses were new."""
        stamp = time.time()
        before = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE issue = ?", (issue,)).fetchone()[0]
        batch: list[tuple[object, ...]] = []

        def flush() -> None:
            with transaction(self.db):
                self.db.executemany(
                    "INSERT INTO deliveries (issue, address, name, fields, line, listed, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue, address) DO UPDATE SET"
                    " listed = excluded.listed, name = excluded.name, fields = excluded.fields,"
                    " line = excluded.line,"
                    " state = CASE WHEN state IN ('removed', 'held') THEN 'pending' ELSE state END",
                    batch,
                )
            batch.clear()

        for sub in subscribers:
            batch.append((issue, sub.email, sub.name, _fields_json(sub.fields), sub.line, stamp, stamp, stamp))
            if len(batch) >= 2000:
                flush()
        if batch:
            flush()
        with transaction(self.db):
            self.db.execute(
                "UPDATE deliveries SET state = 'removed', updated = ? WHERE issue = ?"
                " AND state IN ('pending', 'held') AND listed < ?",
                (stamp, issue, stamp),
            )
        after = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE issue = ?", (issue,)).fetchone()[0]
        return int(after - before)

    def hold(self, issue: str, addresses: Iterable[str]) -> int:
        held = 0
        with transaction(self.db):
            for address in addresses:
                held += self.db.execute(
                    "UPDATE deliveries SET state = 'held', updated = ? WHERE issue = ? AND address = ?"
                    " AND state = 'pending'",
                    (time.time(), issue, address),
                ).rowcount
        return held

    def record_run(self, issue: str, where: str) -> None:
        with transaction(self.db):
            self.db.execute("INSERT INTO runs (issue, started, filter) VALUES (?, ?, ?)", (issue, time.time(), where))

    def runs(self, issue: str) -> list[tuple[float, str]]:
        rows = self.db.execute("SELECT started, filter FROM runs WHERE issue = ? ORDER BY started", (issue,))
        return [(float(started), str(where)) for started, where in rows]

    def recover_in_flight(self, issue: str) -> int:
        """Rows left in ``sending`` by a worker that stopped (their lease is over, or was ended by
        ``expire_workers``) go back to pending, flagged as resent."""
        now = time.time()
        with transaction(self.db):
            cursor = self.db.execute(
                "UPDATE deliveries SET state = 'pending', resent = 1, updated = ?, lease_until = 0,"
                " last_reply = 'in flight when an earlier run stopped'"
                " WHERE issue = ? AND state = 'sending' AND lease_until < ?",
                (now, issue, now),
            )
        return cursor.rowcount

    def mark_sent(self, delivery: Delivery, message_id: str, reply: str) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE deliveries SET state = 'sent', message_id = ?, last_reply = ?, updated = ?,"
            " sent_at = ? WHERE id = ?",
            (message_id, reply, now, now, delivery.id),
        )

    def mark_deferred(self, delivery: Delivery, reply: str, *, uncertain: bool, not_before: float = 0.0) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'pending', last_reply = ?, updated = ?, resent = resent OR ?,"
            " lease_until = ? WHERE id = ?",
            (reply, time.time(), int(uncertain), not_before, delivery.id),
        )

    def mark_failed(self, delivery: Delivery, reply: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'failed', last_reply = ?, updated = ? WHERE id = ?",
            (reply, time.time(), delivery.id),
        )

    def release(self, delivery: Delivery) -> None:
        """A claimed row that was never handed to the server goes back to pending as it was."""
        self.db.execute(
            "UPDATE deliveries SET state = 'pending', attempts = MAX(attempts - 1, 0), lease_until = 0,"
            " updated = ? WHERE id = ? AND state = 'sending'",
            (time.time(), delivery.id),
        )

    def counts(self, issue: str) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute(
            "SELECT state, COUNT(*) FROM deliveries WHERE issue = ? GROUP BY state", (issue,)
        ):
            counts[state] = n
        counts["resent"] = self.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE issue = ? AND resent = 1", (issue,)
        ).fetchone()[0]
        return counts

    def suppressed_by_reason(self, issue: str) -> dict[str, int]:
        """The recipients skipped as suppressed, by the list's reason now (unsubscribed, bounced...)."""
        rows = self.db.execute(
            "SELECT COALESCE(s.reason, 'no longer suppressed'), COUNT(*) FROM deliveries d"
            " LEFT JOIN suppressions s ON s.address = d.address WHERE d.issue = ? AND d.state = 'suppressed'"
            " GROUP BY 1 ORDER BY 1",
            (issue,),
        )
        return {str(reason): int(n) for reason, n in rows}

    def pending_suppressed(self, issue: str) -> int:
        """Pending rows whose address is on the suppression list (they will be skipped)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM deliveries d JOIN suppressions s ON s.address = d.address"
            " WHERE d.issue = ? AND d.state = 'pending'",
            (issue,),
        ).fetchone()
        return int(row[0])

    def state_of(self, issue: str, address: str) -> str | None:
        row = self.db.execute(
            "SELECT state FROM deliveries WHERE issue = ? AND address = ?", (issue, address)
        ).fetchone()
        return str(row[0]) if row else None

    def failures(self, issue: str) -> list[tuple[str, int, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self.db.execute(
                "SELECT address, attempts, last_reply FROM deliveries WHERE issue = ? AND state = 'failed' ORDER BY id",
                (issue,),
            )
        ]

    def retry_failed(self, issue: str) -> int:
        with transaction(self.db):
            cursor = self.db.execute(
                "UPDATE deliveries SET state = 'pending', updated = ?, first_try = 0, lease_until = 0"
                " WHERE issue = ? AND state = 'failed'",
                (time.time(), issue),
            )
        return cursor.rowcount

    def issues(self) -> list[tuple[str, float]]:
        rows = self.db.execute("SELECT issue, MIN(created) FROM deliveries GROUP BY issue ORDER BY 2 DESC, 1")
        return [(str(issue), float(created)) for issue, created in rows]

    def discard_unsent(self, issue: str) -> int:
        with transaction(self.db):
            cursor = self.db.execute(
                "DELETE FROM deliveries WHERE issue = ? AND attempts = 0"
                " AND state IN ('pending', 'suppressed', 'removed', 'held')",
                (issue,),
            )
            if not self.db.execute("SELECT 1 FROM deliveries WHERE issue = ? LIMIT 1", (issue,)).fetchone():
                self.db.execute("DELETE FROM sends WHERE issue = ?", (issue,))
        return cursor.rowcount


def issue_status(journal: Journal | None, issue: str) -> IssueStatus:
    """The journal's view of one issue; all zeros when nothing was ever stored."""
    if journal is None:
        return IssueStatus(issue, {**dict.fromkeys(STATES, 0), "resent": 0}, ())
    failures = tuple(Failure(*row) for row in journal.failures(issue))
    return IssueStatus(issue, journal.counts(issue), failures)
