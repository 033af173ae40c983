"""The one implementation of the ``Store`` protocol (base.py) for SQLite and PostgreSQL: the
statements of queries.sql run through the driver's connection, the differences said by the
dialect (dialect.py), every driver error leaving as the package's StoreError (faults.py).

A subclass per database (sqlite.py, postgres.py) only opens the connection and says what is
not SQL: where the store is, its send lock and how its schema version is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict
from typing import Any

from .base import TAKEN_OVER, Claimed, JournalRow, Outlook, WorkerInfo
from .dialect import Dialect
from .faults import driver_errors, store_fault
from .journal import STATES, Delivery, Outcome, Recipient, fields_of
from .queries import Queries, queries_for
from .rows import (
    BounceRecord,
    PreferenceRow,
    Removal,
    RunRecord,
    SendRecord,
    SignupMail,
    SignupRequest,
    SignupRow,
    Suppression,
)

__all__ = ["SQLStore", "lock_key"]

_EXCLUSIVE_LOCK = 0x6E6C5F78  # the lock every exclusive() block holds, whoever runs it
Params = dict[str, Any]


def lock_key(name: str) -> int:
    """A stable 63-bit number for an advisory lock named ``name``."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


# json.dumps with arguments builds an encoder per call: a third of the cost of a list's row.
_FIELDS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_LOAD_BATCH = 10_000  # rows of a list per transaction as it is loaded into the journal


def _fields_json(fields: tuple[tuple[str, str], ...]) -> str:
    return _FIELDS.encode(fields) if fields else ""


class _Statements:
    """Running named statements on one connection, with the driver's errors mapped."""

    db: Any  # sqlite3.Connection or psycopg.Connection: only this module and its subclasses touch it
    dialect: Dialect
    q: Queries

    def _attach(self, db: Any, dialect: Dialect) -> None:
        self.db, self.dialect, self.q = db, dialect, queries_for(dialect)

    def _values(self, params: Params | None) -> Params:
        values = params or {}
        return {**values, "now": time.time()} if self.dialect.local_clock else values

    def _exec(self, name: str, params: Params | None = None, **marks: str) -> Any:
        sql = self.q[name].format(**marks) if marks else self.q[name]
        try:
            return self.db.execute(sql, self._values(params))
        except driver_errors() as exc:
            raise store_fault(exc) from exc

    def _rows(self, name: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        cursor = self._exec(name, params)
        try:
            return list(cursor.fetchall())
        except driver_errors() as exc:
            raise store_fault(exc) from exc

    def _one(self, name: str, params: Params | None = None) -> Any:
        rows = self._rows(name, params)
        return rows[0][0] if rows else None

    def _run(self, name: str, params: Params | None = None) -> int:
        return int(self._exec(name, params).rowcount)

    def _in_transaction(self) -> bool:
        if self.dialect.name == "sqlite":
            return bool(self.db.in_transaction)
        from psycopg.pq import TransactionStatus

        return bool(self.db.info.transaction_status != TransactionStatus.IDLE)

    def _statement(self, sql: str) -> None:
        try:
            self.db.execute(sql)
        except driver_errors() as exc:
            raise store_fault(exc) from exc

    @contextmanager
    def _transaction(self, lock: int | None = None) -> Iterator[None]:
        """A write transaction (with ``lock``, one no other holder of that lock runs beside:
        Dialect.begin_write); inside another, part of it."""
        if self._in_transaction():
            yield
            return
        for statement in self.dialect.begin_write(lock):
            self._statement(statement)
        try:
            yield
        except BaseException:
            if not getattr(self.db, "closed", False):
                with _quietly():
                    self.db.execute("ROLLBACK")
            raise
        self._statement("COMMIT")

    def exclusive(self) -> Any:
        return self._transaction(_EXCLUSIVE_LOCK)


@contextmanager
def _quietly() -> Iterator[None]:
    try:
        yield
    except driver_errors():  # the error that ended the transaction is the one to report
        pass


class SQLStore(_Statements):
    """The journal, the suppression list, several workers on one send, signups and bounce reports."""

    # The journal (states and rules: journal.py)

    def add_recipients(self, issue: str, subscribers: Iterable[Recipient]) -> int:
        """Load the list as it is now: new addresses become pending rows; pending rows whose
        address has left the list become ``removed`` (and pending again if it comes back).
        Returns how many addresses were new."""
        stamp = time.time()
        before = int(self._one("count_rows", {"issue": issue}))
        batch: list[Params] = []
        for sub in subscribers:
            fields = _fields_json(sub.fields)
            batch.append(
                {
                    "issue": issue,
                    "address": sub.email,
                    "name": sub.name,
                    "fields": fields,
                    "line": sub.line,
                    "stamp": stamp,
                }
            )
            if len(batch) >= _LOAD_BATCH:
                self._add_batch(batch)
        if batch:
            self._add_batch(batch)
        self._run("mark_removed", {"issue": issue, "stamp": stamp})
        return int(self._one("count_rows", {"issue": issue})) - before

    def _add_batch(self, batch: list[Params]) -> None:
        sql = self.q["add_recipient"]
        with self._transaction():
            try:
                if self.dialect.name == "sqlite":
                    self.db.executemany(sql, batch)
                else:
                    with self.db.cursor() as cursor:
                        cursor.executemany(sql, batch)
            except driver_errors() as exc:
                raise store_fault(exc) from exc
        batch.clear()

    def hold(self, issue: str, addresses: Iterable[str]) -> int:
        """Mark these pending rows 'held': listed, but left out of this run by its --where (neither
        removed nor sent; the next run that loads the list makes them pending again)."""
        return self._set_aside("hold", issue, addresses)

    def pause(self, issue: str, addresses: Iterable[str]) -> int:
        """Mark these pending rows 'paused': their readers paused their mail (pending again at the
        next load of the list)."""
        return self._set_aside("pause", issue, addresses)

    def _set_aside(self, statement: str, issue: str, addresses: Iterable[str]) -> int:
        changed, stamp = 0, time.time()
        batch: list[Params] = []
        for address in addresses:
            batch.append({"issue": issue, "address": address, "stamp": stamp})
            if len(batch) >= 2000:
                changed += self._many(statement, batch)
        return changed + (self._many(statement, batch) if batch else 0)

    def _many(self, name: str, batch: list[Params]) -> int:
        """One statement over a batch of parameters, in one transaction; returns the rows changed."""
        with self._transaction():
            try:
                if self.dialect.name == "sqlite":
                    changed = self.db.executemany(self.q[name], batch).rowcount
                else:
                    with self.db.cursor() as cursor:
                        cursor.executemany(self.q[name], batch)
                        changed = cursor.rowcount
            except driver_errors() as exc:
                raise store_fault(exc) from exc
        batch.clear()
        return max(int(changed), 0)

    def record_run(self, issue: str, where: str) -> None:
        """Note that a send of the issue started, with its --where filter ("" for the whole list)."""
        self._run("record_run", {"issue": issue, "started": time.time(), "filter": where})

    def runs(self, issue: str) -> list[tuple[float, str]]:
        """Each run of the issue (when it started, its filter), oldest first."""
        return [(float(started), str(where)) for started, where in self._rows("runs", {"issue": issue})]

    def iter_runs(self) -> Iterator[RunRecord]:
        for issue, started, where in self._rows("iter_runs"):
            yield RunRecord(str(issue), float(started), str(where))

    def add_run(self, run: RunRecord) -> bool:
        return self._run("add_run_once", asdict(run)) == 1

    def iter_sends(self) -> Iterator[SendRecord]:
        for issue, content_hash, started in self._rows("iter_sends"):
            yield SendRecord(str(issue), str(content_hash), float(started))

    def add_send(self, send: SendRecord) -> bool:
        return self._run("add_send_once", asdict(send)) == 1

    def recover_in_flight(self, issue: str) -> int:
        """Rows left in ``sending`` by a worker that stopped (their lease is over, or was ended by
        ``expire_workers``) go back to pending, flagged as resent."""
        return self._run("recover_in_flight", {"issue": issue})

    def mark_sent(self, delivery: Delivery, message_id: str, reply: str) -> None:
        self.record_outcomes([Outcome(delivery, "sent", reply, message_id)])

    def mark_deferred(self, delivery: Delivery, reply: str, *, uncertain: bool, not_before: float = 0.0) -> None:
        self.record_outcomes([Outcome(delivery, "deferred", reply, uncertain=uncertain, not_before=not_before)])

    def mark_failed(self, delivery: Delivery, reply: str) -> None:
        self.record_outcomes([Outcome(delivery, "failed", reply)])

    def release(self, delivery: Delivery) -> None:
        """A claimed row that was never handed to the server goes back to pending as it was."""
        self.record_outcomes([Outcome(delivery, "released")])

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Several outcomes in one transaction; on PostgreSQL pipelined, so one round trip writes
        them all. A single one is its own statement (autocommit), as before."""
        if len(outcomes) == 1:
            self._exec(*_outcome_statement(outcomes[0]))
            return
        self._pipelined([_outcome_statement(outcome) for outcome in outcomes])

    def _pipelined(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Named statements in one transaction, sent together on PostgreSQL (one round trip)."""
        begin = self.dialect.begin_write(None)[0]
        try:
            with self._pipeline():
                self.db.execute(begin)
                for name, params in statements:
                    self.db.execute(self.q[name], self._values(params))
                self.db.execute("COMMIT")
        except driver_errors() as exc:
            with _quietly():
                self.db.execute("ROLLBACK")
            raise store_fault(exc) from exc

    def _pipeline(self) -> AbstractContextManager[Any]:
        return self.db.pipeline() if self.dialect.name == "postgresql" else nullcontext()

    def counts(self, issue: str) -> dict[str, int]:
        counts = {**dict.fromkeys(STATES, 0), "resent": 0}
        for state, n in self._rows("counts", {"issue": issue}):
            counts[str(state)] = int(n)
        return counts

    def suppressed_by_reason(self, issue: str) -> dict[str, int]:
        """The recipients skipped as suppressed, by the list's reason now (unsubscribed, bounced...)."""
        return {str(reason): int(n) for reason, n in self._rows("suppressed_by_reason", {"issue": issue})}

    def pending_suppressed(self, issue: str) -> int:
        """Pending rows whose address is on the suppression list (they will be skipped)."""
        return int(self._one("pending_suppressed", {"issue": issue}))

    def sendable(self, issue: str) -> Iterator[tuple[str, str, tuple[tuple[str, str], ...]]]:
        """The rows a run will send (pending, not suppressed): address, name and fields, read a
        few thousand at a time."""
        cursor = self._exec("sendable", {"issue": issue})
        try:
            while batch := cursor.fetchmany(5000):
                for address, name, fields in batch:
                    yield str(address), str(name), fields_of(fields)
        except driver_errors() as exc:
            raise store_fault(exc) from exc

    def state_of(self, issue: str, address: str) -> str | None:
        state = self._one("state_of", {"issue": issue, "address": address})
        return None if state is None else str(state)

    def failures(self, issue: str) -> list[tuple[str, int, str]]:
        return [(str(r[0]), int(r[1]), str(r[2])) for r in self._rows("failures", {"issue": issue})]

    def retry_failed(self, issue: str) -> int:
        return self._run("retry_failed", {"issue": issue, "stamp": time.time()})

    def issues(self) -> list[tuple[str, float]]:
        """Every issue in the journal with when its list was first loaded, newest first."""
        return [(str(issue), float(created)) for issue, created in self._rows("issues")]

    def issues_sent(self) -> dict[str, float]:
        """Each issue with a message sent, and when its first was sent (epoch seconds): what the
        web archive publishes, dated. Test sends are never in the journal."""
        return {str(issue): float(first) for issue, first in self._rows("issues_sent")}

    def discard_unsent(self, issue: str) -> int:
        """Delete the issue's rows never tried (a send declined at its prompt), and its send record
        when no row is left; returns how many rows went."""
        with self._transaction():
            gone = self._run("discard_unsent", {"issue": issue})
            if not self._rows("has_rows", {"issue": issue}):
                self._run("forget_send", {"issue": issue})
        return gone

    # Copying between stores

    def journal_rows(self) -> Iterator[JournalRow]:
        for row in self._rows("journal_rows"):
            values = list(row)
            values[9] = bool(values[9])  # SQLite keeps the flag as 0/1
            yield JournalRow(*values)

    def import_journal_rows(self, rows: Iterable[JournalRow]) -> tuple[int, int, int]:
        """Rows keep their numbers where free (VERP senders name them); the others get new ones
        after the rest, in list order. Rows already there stay."""
        inserted = seen = 0
        clashes: list[JournalRow] = []  # their number is another row's: numbered after the rest
        with self._transaction():
            for row in rows:
                seen += 1
                if row.id and self._run("import_row", asdict(row)):
                    inserted += 1
                elif not self._one("has_row", {"issue": row.issue, "address": row.address}):
                    clashes.append(row)
            self._exec("raise_sequence", None, table="deliveries")
            for row in clashes:
                self._run("import_row_renumbered", asdict(row))
        renumbered = sum(1 for row in clashes if row.id)
        return inserted + len(clashes), seen - inserted - len(clashes), renumbered

    # The suppression list's rows (the rules are in audience/suppressions.py)

    def add_suppression(self, entry: Suppression) -> bool:
        return self._run("add_suppression", asdict(entry)) == 1

    def remove_suppression(self, address: str, note: str, when: float) -> Suppression | None:
        with self._transaction():  # the record and the removal together, or neither
            entry = self.get_suppression(address)
            if entry is not None:
                self._run("add_removal", {**_entry(entry), "removed": when, "note": note})
                self._run("delete_suppression", {"address": address})
        return entry

    def add_removal(self, removal: Removal) -> bool:
        params = {**_entry(removal.entry), "removed": removal.removed, "note": removal.note}
        return self._run("add_removal_once", params) == 1

    def iter_removals(self) -> Iterator[Removal]:
        for row in self._rows("iter_removals"):
            yield Removal(Suppression(row[0], row[1], row[2], row[3], row[6]), row[4], row[5])

    def get_suppression(self, address: str) -> Suppression | None:
        rows = self._rows("get_suppression", {"address": address})
        return Suppression(*rows[0]) if rows else None

    def iter_suppressions(self) -> Iterator[Suppression]:
        for row in self._rows("iter_suppressions"):
            yield Suppression(*row)

    def count_suppressions(self) -> int:
        return int(self._one("count_suppressions"))

    # Several workers on one send (leases and pacing on the database's clock)

    def record_send(self, issue: str, content_hash: str, *, replace: bool = False) -> str:
        self._run("replace_send" if replace else "record_send", {"issue": issue, "content_hash": content_hash})
        return str(self._one("recorded_send", {"issue": issue}))

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        params = {"issue": issue, "size": size, "worker": worker, "lease": lease, "taken": TAKEN_OVER}
        return Claimed.of(self._rows("claim_batch", params))

    def outlook(self, issue: str) -> Outlook:
        left, wake = self._rows("outlook", {"issue": issue})[0]
        return Outlook(int(left), float(wake))

    def in_flight_workers(self, issue: str) -> list[str]:
        return [str(row[0]) for row in self._rows("in_flight_workers", {"issue": issue})]

    def expire_workers(self, issue: str, workers: Iterable[str]) -> int:
        return sum(self._run("expire_worker", {"issue": issue, "worker": worker}) for worker in workers)

    def heartbeat(self, issue: str, worker: str, host: str, pid: int, sent: int, lease: float) -> None:
        params = {"issue": issue, "worker": worker, "host": host, "pid": pid, "sent": sent, "lease": lease}
        self._pipelined([("record_worker", params), ("extend_lease", params)])  # one round trip

    def workers(self, issue: str) -> list[WorkerInfo]:
        return [WorkerInfo(*row) for row in self._rows("workers", {"issue": issue})]

    def pace(self, name: str, interval: float) -> float:
        return max(0.0, float(self._one("pace", {"name": name, "interval": interval})))

    def take_slot(self, name: str, per_hour: int) -> float:
        # One taker per name at a time (the count and the insert must not interleave), in one
        # transaction sent at once: a round trip on PostgreSQL, whatever the answer.
        params = self._values({"name": name, "per_hour": per_hour})
        answers: list[Any] = []  # SQLite's are read at once (a statement unread blocks COMMIT)
        now = self.dialect.name == "sqlite"
        try:
            with self._pipeline():
                for statement in self.dialect.begin_write(lock_key(f"pacing_log:{name}")):
                    self.db.execute(statement)
                self.db.execute(self.q["forget_slots"], params)
                for query in ("take_slot", "slots_taken"):
                    cursor = self.db.execute(self.q[query], params)
                    answers.append(cursor.fetchall() if now else cursor)
                self.db.execute("COMMIT")
            taken, left = (answer if now else answer.fetchall() for answer in answers)
            wait = left[0][1]
        except driver_errors() as exc:
            with _quietly():
                self.db.execute("ROLLBACK")
            raise store_fault(exc) from exc
        return 0.0 if taken else max(0.0, float(wait))

    # Signups (the rules: signup_log.py)

    def add_signup_request(self, request: SignupRequest) -> int:
        if not request.id:
            params = asdict(request)
            return int(self._one("add_signup_request", params) or 0)
        with self._transaction():
            number = self._one("add_signup_request_numbered", asdict(request))
            self._exec("raise_sequence", None, table="signup_requests")
        return int(number or 0)

    def get_signup_request(self, request_id: int) -> SignupRequest | None:
        rows = self._rows("get_signup_request", {"id": request_id})
        return SignupRequest(*rows[0]) if rows else None

    def iter_signup_requests(self) -> Iterator[SignupRequest]:
        for row in self._rows("iter_signup_requests"):
            yield SignupRequest(*row)

    def delete_signup_requests(self, address: str) -> int:
        return self._run("delete_signup_requests", {"address": address})

    def expire_signup_requests(self, before: float) -> int:
        return self._run("expire_signup_requests", {"before": before})

    def add_signup(self, signup: SignupRow, *, replace: bool = False) -> bool:
        return self._run("replace_signup" if replace else "add_signup", asdict(signup)) == 1

    def iter_signups(self) -> Iterator[SignupRow]:
        for row in self._rows("iter_signups"):
            yield SignupRow(*row)

    def count_signup_mails(self, since: float, *, address: str = "", ip: str = "") -> int:
        if address:
            return int(self._one("count_signup_mails_to", {"address": address, "since": since}))
        return int(self._one("count_signup_mails_from", {"ip": ip, "since": since}))

    def add_signup_mail(self, mail: SignupMail) -> bool:
        return self._run("add_signup_mail", asdict(mail)) == 1

    def forget_signup_mails(self, before: float) -> None:
        self._run("forget_signup_mails", {"before": before})

    def iter_signup_mails(self) -> Iterator[SignupMail]:
        for row in self._rows("iter_signup_mails"):
            yield SignupMail(*row)

    # Bounce reports (the rules: bounce_log.py)

    def has_bounce_report(self, fingerprint: str) -> bool:
        return bool(self._rows("has_bounce_report", {"fingerprint": fingerprint}))

    def add_bounce_report(self, record: BounceRecord) -> bool:
        return self._run("add_bounce_report", asdict(record)) == 1

    def bounce_reports_about(self, address: str, category: str, since: float) -> list[BounceRecord]:
        params = {"address": address, "category": category, "since": since}
        return [BounceRecord(*row) for row in self._rows("bounce_reports_about", params)]

    def bounce_reports_for_issue(self, issue: str) -> list[BounceRecord]:
        return [BounceRecord(*row) for row in self._rows("bounce_reports_for_issue", {"issue": issue})]

    def iter_bounce_reports(self) -> Iterator[BounceRecord]:
        for row in self._rows("iter_bounce_reports"):
            yield BounceRecord(*row)

    def recipient_of_row(self, row: int) -> tuple[str, str] | None:
        return _pair(self._rows("recipient_of_row", {"row": row}))

    def recipient_of_message(self, message_id: str) -> tuple[str, str] | None:
        return _pair(self._rows("recipient_of_message", {"message_id": message_id}))

    def last_mailed(self, address: str) -> tuple[str, str] | None:
        return _pair(self._rows("last_mailed", {"address": address}))

    # Readers' preferences (the rules: preference_log.py)

    def add_preference(self, row: PreferenceRow) -> bool:
        return self._run("add_preference", asdict(row)) == 1

    def current_preference(self, address: str) -> PreferenceRow | None:
        rows = self._rows("current_preference", {"address": address})
        return _preference(rows[0]) if rows else None

    def readers_paused_since(self, since: float) -> list[str]:
        return [str(address) for (address,) in self._rows("readers_paused_since", {"since": since})]

    def current_preferences(self) -> Iterator[PreferenceRow]:
        for row in self._rows("current_preferences"):
            yield _preference(row)

    def iter_preferences(self) -> Iterator[PreferenceRow]:
        for row in self._rows("iter_preferences"):
            yield _preference(row)


def _preference(row: Sequence[Any]) -> PreferenceRow:
    address, chosen, topics, paused_until, shown, ip, source = row
    return PreferenceRow(str(address), float(chosen), topics, float(paused_until), str(shown), str(ip), str(source))


def _entry(entry: Suppression) -> Params:
    """A suppression as the record of its removal keeps it (its note as ``entry_note``)."""
    return {"address": entry.address, "reason": entry.reason, "source": entry.source, "created": entry.created,
            "entry_note": entry.note}  # fmt: skip


def _outcome_statement(outcome: Outcome) -> tuple[str, Params]:
    """The named statement that records an outcome, and its parameters."""
    now, row = time.time(), outcome.delivery.id
    if outcome.state == "sent":
        return "mark_sent", {"id": row, "message_id": outcome.message_id, "reply": outcome.reply, "stamp": now}
    if outcome.state == "failed":
        return "mark_failed", {"id": row, "reply": outcome.reply, "stamp": now}
    if outcome.state == "deferred":
        # ``not_before`` is on this machine's clock, the lease column on the database's: a wait.
        wait = max(0.0, outcome.not_before - now) if outcome.not_before > 0 else 0.0
        return "mark_deferred", {"id": row, "reply": outcome.reply, "stamp": now, "uncertain": outcome.uncertain,
                                 "wait": wait}  # fmt: skip
    if outcome.state == "paused":
        return "set_aside_paused", {"id": row, "stamp": now}
    return "release", {"id": row, "stamp": now}


def _pair(rows: Sequence[Sequence[Any]]) -> tuple[str, str] | None:
    return (str(rows[0][0]), str(rows[0][1])) if rows else None
