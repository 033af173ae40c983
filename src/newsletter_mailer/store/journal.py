"""The send journal: one row per (issue, recipient) with its state, written in small
transactions, so a crash never skips anyone and resends at most the messages in flight.

States: pending -> sending -> sent | failed | suppressed; a temporary failure puts the row back
to pending, not to be claimed before its backoff is over; a pending row whose address is no longer
in the list is ``removed``; one a run's ``--where`` leaves out is ``held``, and one whose reader
paused their mail is ``paused`` (both pending again at the next load of the list). Rows are
claimed by workers (store/sql.py, claim_batch) under a lease: a row found in ``sending`` whose
lease is over was in flight when its worker stopped: it is sent again and counted as possibly
duplicated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STATES = ("pending", "sending", "sent", "failed", "suppressed", "removed", "held", "paused")


class Recipient(Protocol):
    """A row of the list as the journal keeps it (audience/subscribers.py's Subscriber is one)."""

    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def fields(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def line(self) -> int: ...


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
    clock_offset: float = 0.0  # this machine's clock minus the store's, as seen at the claim

    def tried_for(self, now: float | None = None) -> float:
        """Seconds since the first attempt, on one clock (the store's): a sender whose clock is
        ahead of the database's must not think its retries are older than they are."""
        local = time.time() if now is None else now
        return max(0.0, local - self.clock_offset - self.first_try) if self.first_try else 0.0


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery, as a sender records it: ``sent`` (with its Message-ID),
    ``failed``, ``deferred`` (back to pending, not claimed before ``not_before``), ``released``
    (never handed over) or ``paused`` (never handed over: its reader paused their mail meanwhile).
    Several are written in one transaction (``record_outcomes``)."""

    delivery: Delivery
    state: str
    reply: str = ""
    message_id: str = ""
    uncertain: bool = False
    not_before: float = 0.0


class Journal(Protocol):
    """What a dispatch needs from its journal; SQLite here, another database later."""

    def add_recipients(self, issue: str, subscribers: Iterable[Recipient]) -> int: ...
    def hold(self, issue: str, addresses: Iterable[str]) -> int:
        """Mark these pending rows 'held': listed, but left out of this run by its --where (neither
        removed nor sent; the next run that loads the list makes them pending again)."""

    def pause(self, issue: str, addresses: Iterable[str]) -> int:
        """Mark these pending rows 'paused': their readers paused their mail (neither removed nor
        sent; the next run that loads the list makes them pending again, and pauses them again
        while the pause lasts)."""

    def record_run(self, issue: str, where: str) -> None:
        """Note that a send of the issue started, with its --where filter ("" for the whole list)."""

    def runs(self, issue: str) -> list[tuple[float, str]]:
        """Each run of the issue (when it started, its filter), oldest first."""

    def sendable(self, issue: str) -> Iterator[tuple[str, str, tuple[tuple[str, str], ...]]]:
        """The rows a run will send (pending, not suppressed): address, name and fields."""

    def recover_in_flight(self, issue: str) -> int: ...
    def mark_sent(self, delivery: Delivery, message_id: str, reply: str) -> None: ...
    def mark_deferred(self, delivery: Delivery, reply: str, *, uncertain: bool, not_before: float = 0.0) -> None:
        """Back to pending after a temporary failure; no worker claims it before ``not_before``."""

    def mark_failed(self, delivery: Delivery, reply: str) -> None: ...
    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Write several outcomes in one transaction (one round trip to a server): all or none."""

    def release(self, delivery: Delivery) -> None: ...
    def counts(self, issue: str) -> dict[str, int]: ...
    def pending_suppressed(self, issue: str) -> int: ...
    def suppressed_by_reason(self, issue: str) -> dict[str, int]: ...
    def state_of(self, issue: str, address: str) -> str | None: ...
    def failures(self, issue: str) -> list[tuple[str, int, str]]: ...
    def retry_failed(self, issue: str) -> int: ...
    def issues(self) -> list[tuple[str, float]]:
        """Every issue in the journal with when its list was first loaded, newest first."""

    def issues_sent(self) -> dict[str, float]:
        """Each issue with a message sent, and when its first was sent (epoch seconds): what the
        web archive publishes, dated. Test sends are never in the journal."""

    def discard_unsent(self, issue: str) -> int:
        """Delete the issue's rows never tried (a send declined at its prompt), and its send record
        when no row is left; returns how many rows went."""


def fields_of(text: str) -> tuple[tuple[str, str], ...]:
    """A row's extra columns, as stored by ``_fields_json``."""
    return tuple((str(k), str(v)) for k, v in json.loads(text)) if text else ()


# What a claim returns for each row, in either store; ``skipped`` is true for a row it found
# suppressed (and marked so) instead of claiming it.
CLAIM_RETURNS = "id, address, name, fields, attempts, last_reply, resent, skipped, first_try, now"


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
        time.time() - float(row[9]),
    )


def issue_status(journal: Journal | None, issue: str) -> IssueStatus:
    """The journal's view of one issue; all zeros when nothing was ever stored."""
    if journal is None:
        return IssueStatus(issue, {**dict.fromkeys(STATES, 0), "resent": 0}, ())
    failures = tuple(Failure(*row) for row in journal.failures(issue))
    return IssueStatus(issue, journal.counts(issue), failures)
