"""Several workers on one send, in the SQLite file (processes on this machine): rows claimed
in small batches by one statement inside an immediate transaction, leases, a shared pace."""

from __future__ import annotations

import sqlite3
import time

from .base import TAKEN_OVER, Claimed, WorkerInfo
from .database import transaction
from .journal import Delivery, fields_of

__all__ = ["SQLitePool"]

_CLAIM = """
UPDATE deliveries SET
    state = CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                 THEN 'suppressed' ELSE 'sending' END,
    attempts = attempts + CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                               THEN 0 ELSE 1 END,
    resent = resent OR state = 'sending',
    last_reply = CASE WHEN state = 'sending' THEN :taken ELSE last_reply END,
    worker = :worker, lease_until = :now + :lease, updated = :now
WHERE id IN (
    SELECT id FROM deliveries WHERE issue = :issue
       AND (state = 'pending' OR (state = 'sending' AND lease_until < :now))
     ORDER BY id LIMIT :size
)
RETURNING id, address, name, fields, attempts, last_reply, resent, state
"""


class SQLitePool:
    db: sqlite3.Connection

    def record_send(self, issue: str, content_hash: str) -> str:
        self.db.execute(
            "INSERT OR IGNORE INTO sends (issue, content_hash, started) VALUES (?, ?, ?)",
            (issue, content_hash, time.time()),
        )
        return str(self.db.execute("SELECT content_hash FROM sends WHERE issue = ?", (issue,)).fetchone()[0])

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        params = {"issue": issue, "size": size, "worker": worker, "lease": lease, "now": time.time()}
        with transaction(self.db):
            rows = self.db.execute(_CLAIM, {**params, "taken": TAKEN_OVER}).fetchall()
        rows.sort(key=lambda row: int(row[0]))
        claimed = tuple(
            Delivery(r[0], r[1], r[2], fields_of(r[3]), r[4] - 1, r[5], bool(r[6])) for r in rows if r[7] == "sending"
        )
        return Claimed(claimed, len(rows) - len(claimed))

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
