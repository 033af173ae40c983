"""Several workers on one send, in the SQLite file (processes on this machine): rows claimed
by one statement inside an immediate transaction, leases, a shared pace and an hourly cap."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from .base import TAKEN_OVER, Claimed, Outlook, WorkerInfo
from .database import transaction

__all__ = ["SQLitePool"]

# Pending rows whose backoff is over, then rows whose worker's lease expired; each half walks the
# (issue, state, id) index, so a claim costs the same at the end of a long list as at its start.
_CLAIM = """
UPDATE deliveries SET
    state = CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                 THEN 'suppressed' ELSE 'sending' END,
    attempts = attempts + CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                               THEN 0 ELSE 1 END,
    resent = resent OR state = 'sending',
    last_reply = CASE WHEN state = 'sending' THEN :taken ELSE last_reply END,
    first_try = CASE WHEN first_try = 0 THEN :now ELSE first_try END,
    worker = :worker, lease_until = :now + :lease, updated = :now
WHERE id IN (
    SELECT id FROM (SELECT id FROM deliveries WHERE issue = :issue AND state = 'pending'
                       AND lease_until <= :now ORDER BY id LIMIT :size)
    UNION ALL
    SELECT id FROM (SELECT id FROM deliveries WHERE issue = :issue AND state = 'sending'
                       AND lease_until < :now ORDER BY id LIMIT :size)
    ORDER BY id LIMIT :size
)
RETURNING id, address, name, fields, attempts, last_reply, resent, state = 'suppressed', first_try, :now
"""  # journal.CLAIM_RETURNS


class SQLitePool:
    db: sqlite3.Connection

    def for_sending(self) -> None:
        pass  # every connection to the file already commits with synchronous=NORMAL (database.py)

    def record_send(self, issue: str, content_hash: str, *, replace: bool = False) -> str:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        self.db.execute(
            f"{verb} INTO sends (issue, content_hash, started) VALUES (?, ?, ?)", (issue, content_hash, time.time())
        )
        return str(self.db.execute("SELECT content_hash FROM sends WHERE issue = ?", (issue,)).fetchone()[0])

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        params = {"issue": issue, "size": size, "worker": worker, "lease": lease, "now": time.time()}
        # One statement, its own transaction: it takes the write lock as it starts (waiting out
        # another writer), so the rows it picks are the rows it marks.
        return Claimed.of(self.db.execute(_CLAIM, {**params, "taken": TAKEN_OVER}).fetchall())

    def outlook(self, issue: str) -> Outlook:
        now = time.time()
        left, wake = self.db.execute(
            "SELECT COUNT(*), MIN(lease_until) FROM deliveries WHERE issue = ? AND state IN ('pending', 'sending')",
            (issue,),
        ).fetchone()
        return Outlook(int(left), max(0.0, float(wake or 0.0) - now))

    def in_flight_workers(self, issue: str) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT worker FROM deliveries WHERE issue = ? AND state = 'sending' AND lease_until >= ?",
            (issue, time.time()),
        )
        return sorted(str(row[0]) for row in rows)

    def expire_workers(self, issue: str, workers: Iterable[str]) -> int:
        gone = list(workers)
        marks = ", ".join("?" * len(gone))
        if not gone:
            return 0
        cursor = self.db.execute(
            f"UPDATE deliveries SET lease_until = 0 WHERE issue = ? AND state = 'sending' AND worker IN ({marks})",
            (issue, *gone),
        )
        return cursor.rowcount

    def heartbeat(self, issue: str, worker: str, host: str, pid: int, sent: int, lease: float) -> None:
        now = time.time()
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO workers (issue, worker, host, pid, sent, started, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (issue, worker) DO UPDATE SET sent = excluded.sent, last_seen = excluded.last_seen",
                (issue, worker, host, pid, sent, now, now),
            )
            self.db.execute(
                "UPDATE deliveries SET lease_until = ? WHERE issue = ? AND worker = ? AND state = 'sending'",
                (now + lease, issue, worker),
            )

    def workers(self, issue: str) -> list[WorkerInfo]:
        rows = self.db.execute(
            "SELECT worker, host, pid, sent, started, last_seen FROM workers WHERE issue = ? ORDER BY started",
            (issue,),
        ).fetchall()
        return [WorkerInfo(*row) for row in rows]

    def pace(self, name: str, interval: float) -> float:
        now = time.time()
        with transaction(self.db):
            row = self.db.execute(
                "INSERT INTO pacing (name, next_at) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET next_at = max(next_at, ?) + ? RETURNING next_at",
                (name, now + interval, now, interval),
            ).fetchone()
        return max(0.0, float(row[0]) - interval - now)

    def take_slot(self, name: str, per_hour: int) -> float:
        now = time.time()
        with transaction(self.db):
            self.db.execute("DELETE FROM pacing_log WHERE name = ? AND at <= ?", (name, now - 3600))
            taken, oldest = self.db.execute(
                "SELECT COUNT(*), MIN(at) FROM pacing_log WHERE name = ?", (name,)
            ).fetchone()
            if taken >= per_hour:
                return max(0.0, float(oldest) + 3600 - now)
            self.db.execute("INSERT INTO pacing_log (name, at) VALUES (?, ?)", (name, now))
        return 0.0
