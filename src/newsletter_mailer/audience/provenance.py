"""Whom a delivery report is about, and whether it proves it.

Anyone can mail the bounce address a report that names a reader, so a report's own words
decide nothing. A report is believed only when it carries something that only the recipient's
side of the conversation could have seen, bound to the recipient it names:

- a VERP token (``bounces+TOKEN@``, keyed with the workspace secret) of the journal row that
  mailed that recipient: the receiving system returns the report to it;
- or one of our keyed Message-IDs that the journal holds for a message sent to that recipient:
  real reports quote the returned message's headers.

Either proof names the address acted on; the report's words only have to agree with it (they
may name nobody, and a complaint's quoted To: header, which feedback loops redact, is not a
claim to agree with: only its Original-Rcpt-To is). Anything else is ``unverified``: recorded
and shown, never acted on. See docs/bounces-security.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from email_validator import EmailNotValidError

from .bounces import Report
from .subscribers import address_key, normalise_address
from .verp import VerpCodec

__all__ = ["Journal", "Subject", "message_ids", "subject_of", "webhook_subject"]

# No control characters: a NUL from a hostile report would be refused by PostgreSQL as a parameter.
_MESSAGE_ID = re.compile(r"<([^<>@\s\x00-\x1f\x7f]{1,200}@[^<>\s\x00-\x1f\x7f]{1,200})>")
MAX_PROOFS = 20  # tokens or Message-IDs looked up per report: a real one quotes one or two


class Journal(Protocol):
    """The store's answers this module needs (store.rows.BounceRows)."""

    def recipient_of_row(self, row: int) -> tuple[str, str] | None: ...
    def recipient_of_message(self, message_id: str) -> tuple[str, str] | None: ...
    def last_mailed(self, address: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Subject:
    """Whom a report is about: ``proof`` is "verp" or "message-id" when it proved it, "" when
    only its words name the address (then it must change nothing)."""

    address: str = ""
    issue: str = ""
    proof: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.proof)


def message_ids(text: str) -> list[str]:
    """The distinct ``<id@domain>`` strings in a report, first seen first, at most MAX_PROOFS."""
    return [f"<{found}>" for found in dict.fromkeys(_MESSAGE_ID.findall(text))][:MAX_PROOFS]


def _keys(address: str) -> set[str]:
    """The forms an address may take in a report: as written and as normalised, case folded."""
    keys = {address_key(address.strip())}
    with suppress(EmailNotValidError, ValueError):
        keys.add(address_key(normalise_address(address)))
    return keys


def _agrees(address: str, named: set[str]) -> bool:
    """The proof's recipient is one the report names, or the report names nobody."""
    return not named or bool(_keys(address) & named)


def subject_of(data: bytes, report: Report, journal: Journal, verp: VerpCodec | None) -> Subject:
    """The journal row a report proves it is about; else, unverified, the row its words name or
    the row of a proof that disagrees with its words (a forwarded address's report); else nobody."""
    text = data.decode("latin-1")
    named: set[str] = set() if report.quoted_only else set().union(*(_keys(r) for r in report.recipients))
    proven = [journal.recipient_of_row(row) for row in verp.find(text)[:MAX_PROOFS]] if verp else []
    for found in proven:
        if found is not None and _agrees(found[0], named):
            return Subject(*found, "verp")
    for message_id in message_ids(text):
        found = journal.recipient_of_message(message_id)
        if found is not None and _agrees(found[0], named):
            return Subject(*found, "message-id")
        proven.append(found)
    if (mailed := _mailed(report, journal)) is not None:
        return Subject(*mailed)
    return next((Subject(*found) for found in proven if found is not None), Subject())


def _mailed(report: Report, journal: Journal) -> tuple[str, str] | None:
    """The journal's last row for an address the report names, if this workspace mailed one."""
    for raw in report.recipients:
        try:
            found = journal.last_mailed(normalise_address(raw))
        except (EmailNotValidError, ValueError):
            continue
        if found is not None:
            return found
    return None


def webhook_subject(message_ids: Iterable[str], report: Report, journal: Journal) -> Subject:
    """Whom a provider's webhook event is about. The provider's signature vouches for the event,
    so its recipient is proven when one of our Message-IDs names them (or the event names nobody),
    or, failing that, when this workspace has mailed the address it names; never an address we
    have not mailed."""
    named: set[str] = set().union(*(_keys(r) for r in report.recipients))
    for message_id in list(dict.fromkeys(f"<{m.strip('<>')}>" for m in message_ids))[:MAX_PROOFS]:
        found = journal.recipient_of_message(message_id)
        if found is not None and _agrees(found[0], named):
            return Subject(*found, "message-id")
    mailed = _mailed(report, journal)
    return Subject(*mailed, "webhook") if mailed is not None else Subject()
