"""Several workers on one send, in PostgreSQL: rows claimed in small batches with
``FOR UPDATE SKIP LOCKED``, leases on the database server's clock, a shared pace."""

from __future__ import annotations

from typing import Any

import psycopg

from .base import TAKEN_OVER, Claimed, WorkerInfo
from .journal import Delivery, fields_of

__all__ = ["PostgresPool"]

_NOW = "extract(epoch FROM clock_timestamp())::double precision"

_CLAIM = f"""
WITH picked AS (
    SELECT id FROM deliveries WHERE issue = %(issue)s
       AND (state = 'pending' OR (state = 'sending' AND lease_until < {_NOW}))
     ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), marked AS (
    SELECT p.id, EXISTS (SELECT 1 FROM suppressions s WHERE lower(s.address) = lower(d.address)) AS gone
      FROM picked p JOIN deliveries d ON d.id = p.id
)
UPDATE deliveries d SET
    state = CASE WHEN m.gone THEN 'suppressed' ELSE 'sending' END,
    attempts = d.attempts + CASE WHEN m.gone THEN 0 ELSE 1 END,
    resent = d.resent OR d.state = 'sending',
    last_reply = CASE WHEN d.state = 'sending' THEN %(taken)s ELSE d.last_reply END,
    worker = %(worker)s, lease_until = {_NOW} + %(lease)s, updated = {_NOW}
  FROM marked m WHERE d.id = m.id
RETURNING d.id, d.address, d.name, d.fields, d.attempts, d.last_reply, d.resent, m.gone
"""


class PostgresPool:
    db: psycopg.Connection[tuple[Any, ...]]

    def record_send(self, issue: str, content_hash: str) -> str:
        self.db.execute(
            f"INSERT INTO sends (issue, content_hash, started) VALUES (%s, %s, {_NOW}) ON CONFLICT DO NOTHING",
            (issue, content_hash),
        )
        row = self.db.execute("SELECT content_hash FROM sends WHERE issue = %s", (issue,)).fetchone()
        assert row is not None
        return str(row[0])

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        rows = self.db.execute(
            _CLAIM, {"issue": issue, "size": size, "worker": worker, "lease": lease, "taken": TAKEN_OVER}
        ).fetchall()
        rows.sort(key=lambda row: int(row[0]))
        claimed = tuple(
            Delivery(r[0], r[1], r[2], fields_of(r[3]), r[4] - 1, r[5], bool(r[6])) for r in rows if not r[7]
        )
        return Claimed(claimed, len(rows) - len(claimed))

    def heartbeat(self, issue: str, worker: str, host: str, pid: int, sent: int, lease: float) -> None:
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO workers (issue, worker, host, pid, sent, started, last_seen)"
                f" VALUES (%s, %s, %s, %s, %s, {_NOW}, {_NOW}) ON CONFLICT (issue, worker)"
                f" DO UPDATE SET sent = excluded.sent, last_seen = excluded.last_seen",
                (issue, worker, host, pid, sent),
            )
            self.db.execute(
                f"UPDATE deliveries SET lease_until = {_NOW} + %s"
                " WHERE issue = %s AND worker = %s AND state = 'sending'",
                (lease, issue, worker),
            )

    def workers(self, issue: str) -> list[WorkerInfo]:
        rows = self.db.execute(
            "SELECT worker, host, pid, sent, started, last_seen FROM workers WHERE issue = %s ORDER BY started",
            (issue,),
        ).fetchall()
        return [WorkerInfo(*row) for row in rows]

    def pace(self, name: str, interval: float) -> float:
        row = self.db.execute(
            f"INSERT INTO pacing AS p (name, next_at) VALUES (%(name)s, {_NOW} + %(interval)s)"
            f" ON CONFLICT (name) DO UPDATE SET next_at = greatest(p.next_at, {_NOW}) + %(interval)s"
            f" RETURNING p.next_at - %(interval)s - {_NOW}",
            {"name": name, "interval": interval},
        ).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))
