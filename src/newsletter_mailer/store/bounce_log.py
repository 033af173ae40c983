"""The bounce log: every delivery report processed, whom it was about, what was done.

A report is identified by the SHA-256 of its bytes, so reading the same file, mbox or IMAP
message twice never counts it twice. The recipient comes from the VERP token first (a journal
row), then from a Message-ID of ours quoted in the report, then from the report's own words;
without a VERP token a report is only believed for an address this workspace has mailed, so a
forged report cannot suppress a stranger... or anyone we never wrote to.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError

from ..audience.bounces import Action, Category, Policy, Report, parse_report
from ..audience.links import signer_for
from ..audience.mailbox import ImapMailbox, read_paths
from ..audience.subscribers import normalise_address
from ..audience.suppressions import SuppressionList
from ..audience.verp import VerpCodec
from ..config import Settings
from .base import Store
from .factory import open_store
from .rows import BounceRecord

__all__ = ["BounceLog", "BounceRecord", "Outcome", "bounce_log", "process_imap", "process_paths"]

# No control characters: a NUL from a hostile report would be refused by PostgreSQL as a parameter.
_MESSAGE_ID = re.compile(r"<([^<>@\s\x00-\x1f\x7f]{1,200}@[^<>\s\x00-\x1f\x7f]{1,200})>")


@dataclass(frozen=True)
class Outcome:
    """One processed message: what it said and what was done."""

    source: str
    report: Report
    address: str
    issue: str
    action: Action


class BounceLog:
    def __init__(self, store: Store, policy: Policy | None = None, verp: VerpCodec | None = None) -> None:
        self.store = store
        self.policy = policy or Policy()
        self.verp = verp

    def process(self, source: str, data: bytes) -> Outcome:
        """Read one returned message, record it, and suppress its recipient where the policy says."""
        report = parse_report(data)
        address, issue = self._recipient(data, report)
        return self.record(source, hashlib.sha256(data).hexdigest(), report, address, issue)

    def record(self, source: str, fingerprint: str, report: Report, address: str, issue: str) -> Outcome:
        """Record one report (a returned message, or a provider's webhook event) once per
        ``fingerprint``, and suppress its recipient where the policy says. The record, the count it
        was decided on and the suppression are one exclusive step."""
        with self.store.exclusive():
            if self.store.has_bounce_report(fingerprint):
                return Outcome(source, report, address, issue, Action.DUPLICATE)
            action = self._decide(report, address, issue)
            self.store.add_bounce_report(
                BounceRecord(
                    address,
                    issue,
                    report.category.value,
                    report.status,
                    report.diagnostic,
                    action.value,
                    time.time(),
                    fingerprint,
                    source,
                )
            )
            if action is Action.SUPPRESSED:
                reason = "complained" if report.category is Category.COMPLAINT else "bounced"
                detail = " ".join(p for p in (report.category.value, report.status, report.diagnostic) if p)
                SuppressionList(self.store).add(address, reason, f"{issue or 'bounce report'}: {detail}"[:400])
        return Outcome(source, report, address, issue, action)

    def _decide(self, report: Report, address: str, issue: str) -> Action:
        if not address and report.category in (Category.HARD, Category.SOFT, Category.COMPLAINT):
            return Action.IGNORED
        soft_issues = 0
        if report.category is Category.SOFT:
            now = time.time()
            earlier = self.store.bounce_reports_about(
                address, Category.SOFT.value, now - self.policy.window_days * 86400
            )
            soft_issues = len({_issue_key(r.issue, r.received) for r in earlier} | {_issue_key(issue, now)})
        return self.policy.decide(report.category, soft_issues)

    def _recipient(self, data: bytes, report: Report) -> tuple[str, str]:
        """(address, issue) the report is about; ('', '') when nobody of ours can be named."""
        text = data.decode("latin-1")
        if self.verp is not None:
            for row in self.verp.find(text):
                if found := self.store.recipient_of_row(row):
                    return found
        return self.find_recipient(_MESSAGE_ID.findall(text), report)

    def find_recipient(self, message_ids: Iterable[str], report: Report) -> tuple[str, str]:
        """(address, issue) from a Message-ID of ours (``id@domain``, without brackets) that names one
        of the report's recipients, else from a recipient this workspace has mailed; ('', '')."""
        for message_id in dict.fromkeys(message_ids):
            if not _MESSAGE_ID.fullmatch(f"<{message_id}>"):
                continue
            found = self.store.recipient_of_message(f"<{message_id}>")
            if found and (not report.recipients or found[0].lower() in {r.lower() for r in report.recipients}):
                return found
        for raw in report.recipients:
            try:
                address = normalise_address(raw)
            except EmailNotValidError:
                continue
            if found := self.store.last_mailed(address):
                return found
        return "", ""

    def for_issue(self, issue: str) -> list[BounceRecord]:
        return self.store.bounce_reports_for_issue(issue)


def _issue_key(issue: str, received: float) -> str:
    """A report with no known issue counts as one issue per day (UTC) it arrived."""
    return issue or time.strftime("day %Y-%m-%d", time.gmtime(received))


@contextmanager
def bounce_log(settings: Settings) -> Iterator[BounceLog]:
    """The workspace's bounce log in the store the settings name, with its policy and VERP codec."""
    b = settings.bounces
    verp = VerpCodec.from_signer(signer_for(settings), b.address) if b.address else None
    with open_store(settings) as store:
        yield BounceLog(store, Policy(b.soft_threshold, b.soft_window_days), verp)


def process_paths(settings: Settings, paths: Iterable[Path]) -> list[Outcome]:
    """Process every message in the given files, mbox files and Maildir folders."""
    with bounce_log(settings) as log:
        return [log.process(message.source, message.data) for message in read_paths(paths)]


def process_imap(settings: Settings) -> list[Outcome]:
    """Process the unseen messages of the IMAP folder; each is marked seen once recorded, and
    moved to the processed folder unless nobody could make sense of it (left for a person)."""
    outcomes: list[Outcome] = []
    with bounce_log(settings) as log, ImapMailbox(settings.bounces) as box:
        for message in box.unseen():
            outcome = log.process(message.source, message.data)
            box.done(message, move=outcome.action is not Action.UNRECOGNISED)
            outcomes.append(outcome)
    return outcomes
