"""Several workers on one send, in PostgreSQL: rows claimed in small batches with
``FOR UPDATE SKIP LOCKED``, leases on the database server's clock, a shared pace and hourly cap."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from .base import TAKEN_OVER, Claimed, Outlook, WorkerInfo

__all__ = ["NOW_SQL", "PostgresPool"]

NOW_SQL = "extract(epoch FROM clock_timestamp())::double precision"

# Pending rows whose backoff is over, and rows whose worker's lease ran out, each picked along the
# (issue, state, id) index (an OR of the two would scan the table), locked as they are picked.
_CLAIM = f"""
WITH due AS (
    SELECT id FROM deliveries WHERE issue = %(issue)s AND state = 'pending' AND lease_until <= {NOW_SQL}
     ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id FROM deliveries WHERE issue = %(issue)s AND state = 'sending' AND lease_until < {NOW_SQL}
     ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT id FROM due UNION ALL SELECT id FROM lapsed) AS both_kinds ORDER BY id LIMIT %(size)s
), marked AS (
    -- A claim is durable whatever the session says (for_sending turns synchronous commits off):
    -- lost in a crash of the server, its rows would come back pending, unflagged, although their
    -- messages reached the relay. set_config is volatile, so this CTE is computed for every row.
    SELECT p.id, EXISTS (SELECT 1 FROM suppressions s WHERE lower(s.address) = lower(d.address)) AS gone,
           set_config('synchronous_commit', 'on', true) AS durable
      FROM picked p JOIN deliveries d ON d.id = p.id
)
UPDATE deliveries d SET
    state = CASE WHEN m.gone THEN 'suppressed' ELSE 'sending' END,
    attempts = d.attempts + CASE WHEN m.gone THEN 0 ELSE 1 END,
    resent = d.resent OR d.state = 'sending',
    last_reply = CASE WHEN d.state = 'sending' THEN %(taken)s ELSE d.last_reply END,
    first_try = CASE WHEN d.first_try = 0 THEN {NOW_SQL} ELSE d.first_try END,
    worker = %(worker)s, lease_until = {NOW_SQL} + %(lease)s, updated = {NOW_SQL}
  FROM marked m WHERE d.id = m.id
RETURNING d.id, d.address, d.name, d.fields, d.attempts, d.last_reply, d.resent, m.gone, d.first_try, {NOW_SQL}
"""  # journal.CLAIM_RETURNS


class PostgresPool:
    db: psycopg.Connection[tuple[Any, ...]]

    def for_sending(self) -> None:
        # Outcomes need not wait for the server's WAL flush (about 2 ms here: 220 messages a
        # second instead of thousands): one lost in a crash of the server leaves its row as its
        # claim left it, in flight, and the next run resends it flagged. The claims that make that
        # true are durable (_CLAIM). Only this session: `serve`'s writes stay synchronous.
        self.db.execute("SET synchronous_commit = off")

    def record_send(self, issue: str, content_hash: str, *, replace: bool = False) -> str:
        action = "UPDATE SET content_hash = excluded.content_hash" if replace else "NOTHING"
        self.db.execute(
            f"INSERT INTO sends (issue, content_hash, started) VALUES (%s, %s, {NOW_SQL})"
            f" ON CONFLICT (issue) DO {action}",
            (issue, content_hash),
        )
        row = self.db.execute("SELECT content_hash FROM sends WHERE issue = %s", (issue,)).fetchone()
        assert row is not None
        return str(row[0])

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        params = {"issue": issue, "size": size, "worker": worker, "lease": lease, "taken": TAKEN_OVER}
        return Claimed.of(self.db.execute(_CLAIM, params).fetchall())

    def outlook(self, issue: str) -> Outlook:
        row = self.db.execute(
            f"SELECT count(*), coalesce(greatest(min(lease_until) - {NOW_SQL}, 0), 0) FROM deliveries"
            " WHERE issue = %s AND state IN ('pending', 'sending')",
            (issue,),
        ).fetchone()
        assert row is not None
        return Outlook(int(row[0]), float(row[1]))

    def in_flight_workers(self, issue: str) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT worker FROM deliveries WHERE issue = %s AND state = 'sending'"
            f" AND lease_until >= {NOW_SQL} ORDER BY worker",
            (issue,),
        )
        return [str(row[0]) for row in rows]

    def expire_workers(self, issue: str, workers: Iterable[str]) -> int:
        gone = list(workers)
        if not gone:
            return 0
        cursor = self.db.execute(
            "UPDATE deliveries SET lease_until = 0 WHERE issue = %s AND state = 'sending' AND worker = ANY(%s)",
            (issue, gone),
        )
        return cursor.rowcount

    def heartbeat(self, issue: str, worker: str, host: str, pid: int, sent: int, lease: float) -> None:
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO workers (issue, worker, host, pid, sent, started, last_seen)"
                f" VALUES (%s, %s, %s, %s, %s, {NOW_SQL}, {NOW_SQL}) ON CONFLICT (issue, worker)"
                f" DO UPDATE SET sent = excluded.sent, last_seen = excluded.last_seen",
                (issue, worker, host, pid, sent),
            )
            self.db.execute(
                f"UPDATE deliveries SET lease_until = {NOW_SQL} + %s"
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
            f"INSERT INTO pacing AS p (name, next_at) VALUES (%(name)s, {NOW_SQL} + %(interval)s)"
            f" ON CONFLICT (name) DO UPDATE SET next_at = greatest(p.next_at, {NOW_SQL}) + %(interval)s"
            f" RETURNING p.next_at - %(interval)s - {NOW_SQL}",
            {"name": name, "interval": interval},
        ).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))

    def take_slot(self, name: str, per_hour: int) -> float:
        with self.db.transaction():
            # One taker per name at a time: the count and the insert must not interleave.
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext('pacing_log:' || %s))", (name,))
            self.db.execute(f"DELETE FROM pacing_log WHERE name = %s AND at <= {NOW_SQL} - 3600", (name,))
            row = self.db.execute(
                f"SELECT count(*), coalesce(min(at) + 3600 - {NOW_SQL}, 0) FROM pacing_log WHERE name = %s",
                (name,),
            ).fetchone()
            assert row is not None
            if int(row[0]) >= per_hour:
                return max(0.0, float(row[1]))
            self.db.execute(f"INSERT INTO pacing_log (name, at) VALUES (%s, {NOW_SQL})", (name,))
        return 0.0
