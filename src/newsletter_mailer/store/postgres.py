"""The shared store: the journal, the suppression list, signups and bounce reports in PostgreSQL
(psycopg 3, plain SQL), so the public endpoint and senders on other machines see one state. The
send lock is a session advisory lock: the server drops it when the holder's connection dies.

The same rows and states as the SQLite journal (journal.py); the schema is versioned and
changed only by ``newsletter store migrate``, never implicitly at start.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from ..errors import AlreadySending, SchemaMismatch, StoreUnavailable
from .base import redact_url
from .database import record_sent_issue
from .dialect import POSTGRESQL
from .faults import mapped
from .schema import STEPS, VERSION
from .sql import SQLStore

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]

MIGRATIONS: tuple[str, ...] = tuple(step.postgresql for step in STEPS)  # version N+1 is MIGRATIONS[N]
SCHEMA_VERSION = VERSION
_MIGRATE_LOCK = 0x6E6C5F6D  # one `store migrate` at a time, whoever runs it
Conn = psycopg.Connection[tuple[Any, ...]]


def connect(url: str, password: str = "") -> Conn:
    """A connection in autocommit mode (each statement its own transaction, as in SQLite);
    every failure to connect becomes one StoreError naming the URL without its password."""
    extra: dict[str, Any] = {"application_name": f"newsletter pid {os.getpid()} on {socket.gethostname()}"[:63]}
    if password:
        extra["password"] = password
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, **extra)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise StoreUnavailable(f"cannot open the store {redact_url(url)}: {reason}") from None


class PostgresStore(SQLStore):
    db: Conn

    def __init__(self, db: Conn, url: str, state_dir: Path | None = None) -> None:
        self._attach(db, POSTGRESQL)
        self.url = url
        self.state_dir = state_dir  # the workspace's, for the marker of issues it sent
        self._password = ""

    @classmethod
    def open(cls, url: str, password: str = "", *, check: bool = True, state_dir: Path | None = None) -> PostgresStore:
        """Connect; with ``check``, refuse a schema older or newer than the code."""
        store = cls(connect(url, password), url, state_dir)
        store._password = password  # kept in memory only, for another() (a second session)
        if check:
            try:
                store.check_schema()
            except BaseException:
                store.close()
                raise
        return store

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def close(self) -> None:
        with mapped():
            self.db.close()

    def another(self) -> PostgresStore:
        """A second session to the same store (a sender's writer of outcomes runs beside its claims)."""
        return PostgresStore.open(self.url, getattr(self, "_password", ""), check=False, state_dir=self.state_dir)

    def parallel_sessions(self) -> int:
        # Up to five claims (of two batches each) and five commits of outcomes under way at once
        # keep a sender with its store 40 ms away above half its rate on loopback (send/engine.py
        # `depth`, docs/benchmarks.md); it opens sessions only when the ones it has are all
        # waiting, so a store on loopback sees one or two.
        return 5

    def for_sending(self) -> None:
        # Outcomes need not wait for the server's WAL flush (about 2 ms here: 220 messages a
        # second instead of thousands): one lost in a crash of the server leaves its row as its
        # claim left it, in flight, and the next run resends it flagged. The claims that make that
        # true are durable (queries.sql, claim_batch). Only this session: `serve`'s writes stay
        # synchronous.
        self._statement("SET synchronous_commit = off")

    def _value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with mapped():
            row = self.db.execute(sql.encode() if not params else sql, params).fetchone()
        return row[0] if row else None

    # The schema

    def schema_version(self) -> int:
        if self._value("SELECT to_regclass('newsletter_schema')") is None:
            return 0
        return int(self._value("SELECT max(version) FROM newsletter_schema") or 0)

    def check_schema(self) -> None:
        version = self.schema_version()
        if version < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the store {self.where} has schema version {version}, older than this newsletter-mailer's "
                f"{SCHEMA_VERSION}: run `newsletter store migrate`"
            )
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the store {self.where} has schema version {version}, newer than this newsletter-mailer's "
                f"{SCHEMA_VERSION}: upgrade newsletter-mailer on this machine"
            )

    def migrate(self) -> tuple[int, int]:
        with self._transaction(_MIGRATE_LOCK):
            self._statement(
                "CREATE TABLE IF NOT EXISTS newsletter_schema"
                " (version integer NOT NULL, applied double precision NOT NULL)"
            )
            before = int(self._value("SELECT coalesce(max(version), 0) FROM newsletter_schema"))
            if before > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"the store {self.where} has schema version {before}, newer than this newsletter-mailer's "
                    f"{SCHEMA_VERSION}: upgrade newsletter-mailer on this machine"
                )
            for version in range(before + 1, SCHEMA_VERSION + 1):
                with mapped():
                    self.db.execute(MIGRATIONS[version - 1].encode())
                    self.db.execute("INSERT INTO newsletter_schema VALUES (%s, %s)", (version, time.time()))
        return before, SCHEMA_VERSION

    # The send lock: a session advisory lock, dropped by the server when the holder's connection dies

    @contextmanager
    def send_lock(self, issue: str) -> Iterator[None]:
        key = int(self._value("SELECT hashtextextended(%s, 0)", (f"newsletter send {issue}",)))
        if not self._value("SELECT pg_try_advisory_lock(%s)", (key,)):
            holder = self._value(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
                (key,),
            )
            raise AlreadySending(
                f"another `newsletter send` of {issue} is running{f' ({holder})' if holder else ''}; "
                "wait for it to finish, stop it, or help it with `newsletter send ISSUE --join`"
            )
        try:
            yield
        finally:
            if not self.db.closed:
                self._value("SELECT pg_advisory_unlock(%s)", (key,))

    # A server under a send: nothing of the store's lives in the workspace but the marker

    def start_sending(self, issue: str) -> None:
        if self.state_dir is not None:
            with mapped():
                record_sent_issue(self.state_dir, issue)

    def free_reserve(self) -> bool:
        return False

    def lost(self) -> str:
        return ""  # a server database cannot be deleted or replaced under an open session

    def salvage_if_lost(self) -> Path | None:
        return None
