"""What every store offers, whichever database holds it: the journal, the suppression list's
rows, signups and bounce reports (rows.py), the per-issue send lock and a versioned schema.
One implementation (sql.py) serves SQLite (sqlite.py) and PostgreSQL (postgres.py); open one with
``open_store`` (factory.py). Every failure leaves it as a StoreError (faults.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from .journal import Delivery, Journal, claimed_delivery
from .rows import (
    BounceRows,
    Exclusive,
    PreferenceRows,
    Removal,
    RunRecord,
    SendRecord,
    SignupRows,
    SuppressionStore,
)

__all__ = [
    "TAKEN_OVER",
    "Claimed",
    "JournalRow",
    "Outlook",
    "SharedSend",
    "Store",
    "WorkerInfo",
    "redact_url",
    "without_password",
]

TAKEN_OVER = "claimed by a worker that stopped (its lease expired)"


@dataclass(frozen=True)
class JournalRow:
    """One journal row with every column, as ``store copy`` moves it between stores."""

    issue: str
    address: str
    name: str
    fields: str
    line: int
    state: str
    attempts: int
    last_reply: str
    message_id: str
    resent: bool
    listed: float
    created: float
    updated: float
    sent_at: float | None
    id: int = 0  # the row's number, which its VERP sender names: a copy keeps it where it is free


@dataclass(frozen=True)
class WorkerInfo:
    """One sender process on a send, as `status` shows it."""

    worker: str
    host: str
    pid: int
    sent: int
    started: float
    last_seen: float

    @property
    def rate(self) -> float:
        """Messages per second since the worker started."""
        return self.sent / max(self.last_seen - self.started, 1e-9)


@dataclass(frozen=True)
class Claimed:
    """A batch of rows claimed by one worker, and how many it found suppressed (and marked so)."""

    deliveries: tuple[Delivery, ...]
    suppressed: int

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> Claimed:
        """A claim's rows (journal.CLAIM_RETURNS, either store), in list order."""
        ordered = sorted(rows, key=lambda row: int(row[0]))
        deliveries = tuple(claimed_delivery(row) for row in ordered if not row[7])
        return cls(deliveries, len(ordered) - len(deliveries))


@dataclass(frozen=True)
class Outlook:
    """What is left of a send when a worker finds nothing to claim: rows pending or in flight
    (anyone's), and how long until the soonest of them can be claimed (a backoff or a lease)."""

    left: int
    wake_in: float


class SharedSend(Protocol):
    """What several workers on one send share through the store. Leases and pacing use the
    database's clock where it has one, so workers on machines with skewed clocks agree."""

    def record_send(self, issue: str, content_hash: str, *, replace: bool = False) -> str:
        """Record the issue's content hash for its send unless one is recorded (``replace``: the
        send that starts it records its own); returns the recorded one."""

    def claim_batch(self, issue: str, worker: str, size: int, lease: float) -> Claimed:
        """Claim up to ``size`` rows in list order: pending ones, and rows of a worker whose lease
        expired (flagged as possibly duplicated). Two workers never get the same row."""

    def outlook(self, issue: str) -> Outlook: ...
    def in_flight_workers(self, issue: str) -> list[str]:
        """The workers holding rows in flight under a lease that has not expired."""

    def expire_workers(self, issue: str, workers: Iterable[str]) -> int:
        """End the leases of workers known to be gone, so their rows are taken over at once."""

    def heartbeat(self, issue: str, worker: str, host: str, pid: int, sent: int, lease: float) -> None:
        """The worker is alive: extend the lease on its rows in flight and record its progress."""

    def workers(self, issue: str) -> list[WorkerInfo]: ...
    def pace(self, name: str, interval: float) -> float:
        """Take the next slot of a shared pace (one per ``interval`` seconds across every
        worker and machine); returns how long to wait before using it."""

    def take_slot(self, name: str, per_hour: int) -> float:
        """Take one of ``per_hour`` slots in the rolling hour shared by every worker; returns 0 if
        taken, else how long until one frees (nothing taken: ask again then)."""


class Store(Journal, SuppressionStore, SignupRows, BounceRows, PreferenceRows, Exclusive, SharedSend, Protocol):
    """All the state in one database: the journal, the suppression list, signups and bounce
    reports, with its send lock."""

    @property
    def where(self) -> str:
        """The store named for messages: a file path, or a URL without its password."""

    def close(self) -> None: ...
    def another(self) -> Store:
        """A second connection to the same store, closed by the caller."""

    def parallel_sessions(self) -> int:
        """How many sessions a sender may keep busy at once to overlap its round trips (claims
        ahead, batches of outcomes): 1 for a file, a few for a server across a network."""

    def for_sending(self) -> None:
        """This connection now writes a send's journal, two small commits per message: let the
        outcomes return before the disk has them. A crash of the database server or the machine
        may then lose the last moment's outcomes; claims stay durable, so those rows come back in
        flight and are resent flagged (README, "Sharing state")."""

    def send_lock(self, issue: str) -> AbstractContextManager[None]:
        """Only one send of an issue at a time; dropped when the holder dies."""

    def exclusive(self) -> AbstractContextManager[None]: ...

    # What a send asks of the store beyond its rows (a file can be lost or fill its disk).

    def start_sending(self, issue: str) -> None:
        """Before the first message of ``issue`` goes out: note in the workspace that it sends it
        (a database lost later is then refused, not silently recreated), and hold back a little
        disk for the outcomes still in flight should the disk fill (SQLite)."""

    def free_reserve(self) -> bool:
        """Free the disk held back by ``start_sending``; False if there was none left to free."""

    def lost(self) -> str:
        """ "" while the store is the one that was opened; else what happened to its file
        ("deleted" or "replaced")."""

    def salvage_if_lost(self) -> Path | None:
        """None while the store is the one that was opened (``lost``); else where its open copy
        was written out, so its record is not lost."""

    def schema_version(self) -> int: ...
    def migrate(self) -> tuple[int, int]:
        """Bring the schema to the code's version; returns (before, after)."""

    def journal_rows(self) -> Iterator[JournalRow]:
        """Every journal row, issue by issue in list order."""

    def import_journal_rows(self, rows: Iterable[JournalRow]) -> tuple[int, int, int]:
        """Insert rows whose (issue, address) is new, each under its own number unless another
        row has it; returns (inserted, already there, of the inserted those given a new number)."""

    def iter_sends(self) -> Iterator[SendRecord]:
        """Every issue's first send (its content hash and moment), for ``store copy``."""

    def add_send(self, send: SendRecord) -> bool:
        """Insert unless the issue's send is recorded already; True if it was inserted."""

    def iter_runs(self) -> Iterator[RunRecord]:
        """Every run of every issue with its --where filter, oldest first."""

    def add_run(self, run: RunRecord) -> bool:
        """Insert unless the same run is there already; True if it was inserted."""

    def add_removal(self, removal: Removal) -> bool:
        """Keep the record of an address taken off the suppression list (for ``store copy``)
        unless an identical one is there; True if added."""


def without_password(url: str) -> str:
    """The URL as the settings file may hold it: no password in the user part or the query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at:
        authority = f"{userinfo.partition(':')[0]}@{host}"
    path, _, query = tail.partition("?")
    kept = [p for p in query.split("&") if p and not unquote(p).lower().strip().startswith("password=")]
    return f"{scheme}://{authority}{slash}{path}{'?' if kept else ''}{'&'.join(kept)}"


def redact_url(url: str) -> str:
    """``postgresql://ann:secret@db/news`` -> ``postgresql://ann:***@db/news``; also a
    ``password=`` query parameter. For messages: a password never reaches a log or an error."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{host}"
    path, question, query = tail.partition("?")
    if question:
        params = [
            ("password=***" if unquote(p).lower().strip().startswith("password=") else p) for p in query.split("&")
        ]
        query = "&".join(params)
    return f"{scheme}://{authority}{slash}{path}{question}{query}"
