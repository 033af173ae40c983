"""The rows of the suppression list, signups and bounce reports, as every store keeps them: the
small protocols ``SuppressionStore``, ``SignupRows`` and ``BounceRows`` that the one SQL
implementation (sql.py) offers, and the plain rows they pass. The rules over them live in
audience/ (suppressions.py, signup_log.py, bounce_log.py), which run the steps of one decision
inside ``exclusive()``.

Addresses compare without regard to case, as in the journal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BounceRecord",
    "BounceRows",
    "Exclusive",
    "PreferenceRow",
    "PreferenceRows",
    "Removal",
    "RunRecord",
    "SendRecord",
    "SignupMail",
    "SignupRequest",
    "SignupRow",
    "SignupRows",
    "Suppression",
    "SuppressionStore",
]


@dataclass(frozen=True)
class SignupRequest:
    """A signup waiting for its confirmation link. ``id`` is what the link names (0: not stored yet)."""

    id: int
    address: str
    name: str
    fields: str  # the extra form fields as stored (JSON, "" for none)
    requested: float
    ip: str
    wording: str
    nonce: str = ""  # random, stored with it and named by its link ("" for a request made before nonces)


@dataclass(frozen=True)
class SignupRow:
    """A confirmed signup with the record of its consent."""

    address: str
    name: str
    fields: str
    requested: float
    request_ip: str
    confirmed: float
    confirm_ip: str
    wording: str


@dataclass(frozen=True)
class SignupMail:
    """One confirmation mail sent, as the rate limits count them."""

    address: str
    ip: str
    sent: float


@dataclass(frozen=True)
class PreferenceRow:
    """One change a reader made on the preferences page, with its consent record: when, from
    which IP, what the page offered (``shown``, JSON) and what they chose. ``topics`` is JSON,
    None when the change left topics unchosen; ``paused_until`` epoch seconds, 0 for no pause."""

    address: str
    chosen: float
    topics: str | None
    paused_until: float
    shown: str
    ip: str
    source: str


@dataclass(frozen=True)
class BounceRecord:
    """One delivery report processed: whom it was about and what was done. ``fingerprint`` (the
    SHA-256 of the message) makes a report count once, whichever store or run sees it again."""

    address: str
    issue: str
    category: str
    status: str
    diagnostic: str
    action: str
    received: float
    fingerprint: str = ""
    source: str = ""


class Exclusive(Protocol):
    def exclusive(self) -> AbstractContextManager[None]:
        """One transaction that no other ``exclusive`` block runs beside, in any process on any
        machine: what it reads stays true until it commits, and its writes commit together
        (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction holding an advisory lock)."""


class SignupRows(Protocol):
    def add_signup_request(self, request: SignupRequest) -> int:
        """Store a request; the store numbers it when its id is 0, else it keeps its id unless that
        is taken (then nothing is stored). Returns its id, or 0 if nothing was stored. A number is
        never handed out twice, even after its request is gone (its link must not name another)."""

    def get_signup_request(self, request_id: int) -> SignupRequest | None: ...
    def iter_signup_requests(self) -> Iterator[SignupRequest]:
        """Every request waiting, oldest first."""

    def delete_signup_requests(self, address: str) -> int:
        """Forget every request for an address; returns how many."""

    def expire_signup_requests(self, before: float) -> int:
        """Forget requests made before ``before``; returns how many."""

    def add_signup(self, signup: SignupRow, *, replace: bool = False) -> bool:
        """Store a confirmed signup; the address's earlier one stays unless ``replace``. True if written."""

    def iter_signups(self) -> Iterator[SignupRow]:
        """Every confirmed signup, oldest confirmation first."""

    def count_signup_mails(self, since: float, *, address: str = "", ip: str = "") -> int:
        """Confirmation mails sent since ``since`` to ``address``, or from ``ip``."""

    def add_signup_mail(self, mail: SignupMail) -> bool:
        """Log a confirmation mail unless an identical entry is there; True if logged."""

    def forget_signup_mails(self, before: float) -> None: ...
    def iter_signup_mails(self) -> Iterator[SignupMail]: ...


class BounceRows(Protocol):
    def has_bounce_report(self, fingerprint: str) -> bool: ...
    def add_bounce_report(self, record: BounceRecord) -> bool:
        """Store a report unless one with its fingerprint is there; True if stored."""

    def bounce_reports_about(self, address: str, category: str, since: float) -> list[BounceRecord]:
        """The reports of one category about an address received since ``since``."""

    def bounce_reports_for_issue(self, issue: str) -> list[BounceRecord]:
        """The reports about an issue, in the order they were processed."""

    def iter_bounce_reports(self) -> Iterator[BounceRecord]:
        """Every report, in the order they were processed."""

    # Whom a report is about: (address, issue) of a journal row, found three ways.

    def recipient_of_row(self, row: int) -> tuple[str, str] | None:
        """The journal row a VERP token names."""

    def recipient_of_message(self, message_id: str) -> tuple[str, str] | None:
        """The journal row that sent the message with this Message-ID (with its angle brackets)."""

    def last_mailed(self, address: str) -> tuple[str, str] | None:
        """The journal row of the last message sent to an address (any row for it if none was sent)."""


class PreferenceRows(Protocol):
    def add_preference(self, row: PreferenceRow) -> bool:
        """Keep a change unless one for the address at that moment is there; True if kept."""

    def current_preference(self, address: str) -> PreferenceRow | None:
        """The address's newest change, if it made one."""

    def current_preferences(self) -> Iterator[PreferenceRow]:
        """Each address's newest change."""

    def readers_paused_since(self, since: float) -> list[str]:
        """The addresses whose newest change, made at or after ``since`` (epoch seconds), pauses
        their mail now."""

    def iter_preferences(self) -> Iterator[PreferenceRow]:
        """Every change, oldest first."""


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    created: float
    note: str = ""


@dataclass(frozen=True)
class Removal:
    """An address taken off the list: what it was, when and why."""

    entry: Suppression
    removed: float
    note: str


class SuppressionStore(Protocol):
    """The rows of the suppression list; addresses compare without regard to case."""

    def add_suppression(self, entry: Suppression) -> bool:
        """Insert unless the address is there already; True if it was inserted."""

    def remove_suppression(self, address: str, note: str, when: float) -> Suppression | None:
        """Delete the entry and keep a record of it (when, why) in one transaction; the entry or None."""

    def iter_removals(self) -> Iterator[Removal]:
        """Every address taken off the list, oldest removal first."""

    def get_suppression(self, address: str) -> Suppression | None: ...
    def iter_suppressions(self) -> Iterator[Suppression]:
        """Every entry, oldest first."""

    def count_suppressions(self) -> int: ...


@dataclass(frozen=True)
class SendRecord:
    """An issue's first send: the content hash it was sent with, and when (``store copy``)."""

    issue: str
    content_hash: str
    started: float


@dataclass(frozen=True)
class RunRecord:
    """One run of an issue's send and its ``--where`` filter ("" for the whole list)."""

    issue: str
    started: float
    filter: str
