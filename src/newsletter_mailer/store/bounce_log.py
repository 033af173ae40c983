"""The bounce log: every delivery report processed, whom it was about, what was done.

A report is identified by the SHA-256 of its bytes, so reading the same file, mbox or IMAP
message twice never counts it twice. Only a report that proves whom it is about (a VERP token
or a Message-ID of ours for the recipient it names, audience/provenance.py) is acted on; one
that only names a reader in its own words is recorded as unverified; one that cannot be read
is recorded as quarantined with the reason and flagged in its mailbox, and the run goes on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..audience.bounces import Action, Category, Policy, Report, parse_report
from ..audience.links import signer_for
from ..audience.mailbox import ImapMailbox, flag_maildir, read_paths
from ..audience.provenance import Subject, subject_of
from ..audience.suppressions import SuppressionList
from ..audience.verp import VerpCodec
from ..config import Settings
from .base import Store
from .factory import open_store
from .rows import BounceRecord

__all__ = ["BounceLog", "BounceRecord", "Outcome", "bounce_log", "process_imap", "process_paths"]

# Reports that are not evidence: they never count toward a soft bounce's threshold.
_NOT_COUNTED = (Action.UNVERIFIED.value, Action.QUARANTINED.value)


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
        subject = (
            Subject() if report.category is Category.UNREADABLE else subject_of(data, report, self.store, self.verp)
        )
        return self.record(source, hashlib.sha256(data).hexdigest(), report, subject)

    def record(self, source: str, fingerprint: str, report: Report, subject: Subject) -> Outcome:
        """Record one report (a returned message, or a provider's webhook event) once per
        ``fingerprint``, and suppress its recipient where the policy says. The record, the count it
        was decided on and the suppression are one exclusive step."""
        address, issue = subject.address, subject.issue
        with self.store.exclusive():
            if self.store.has_bounce_report(fingerprint):
                return Outcome(source, report, address, issue, Action.DUPLICATE)
            action = self._decide(report, subject)
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

    def _decide(self, report: Report, subject: Subject) -> Action:
        if report.category in (Category.HARD, Category.SOFT, Category.COMPLAINT):
            if not subject.address:
                return Action.IGNORED
            if not subject.verified:
                return Action.UNVERIFIED
        soft_issues = 0
        if report.category is Category.SOFT:
            now = time.time()
            earlier = self.store.bounce_reports_about(
                subject.address, Category.SOFT.value, now - self.policy.window_days * 86400
            )
            counted = [r for r in earlier if r.action not in _NOT_COUNTED]
            soft_issues = len({_issue_key(r.issue, r.received) for r in counted} | {_issue_key(subject.issue, now)})
        return self.policy.decide(report.category, soft_issues)

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
    outcomes: list[Outcome] = []
    with bounce_log(settings) as log:
        for message in read_paths(paths):
            outcome = log.process(message.source, message.data)
            if outcome.action is Action.QUARANTINED:
                flag_maildir(message)
            outcomes.append(outcome)
    return outcomes


def process_imap(settings: Settings) -> list[Outcome]:
    """Process the unseen messages of the IMAP folder; each is marked seen once recorded, and
    moved to the processed folder unless it is for a person to judge: unrecognised, unverified
    (it names a reader but proves nothing) or quarantined (also flagged)."""
    outcomes: list[Outcome] = []
    with bounce_log(settings) as log, ImapMailbox(settings.bounces) as box:
        for message in box.unseen():
            outcome = log.process(message.source, message.data)
            left = outcome.action in (Action.UNRECOGNISED, Action.UNVERIFIED, Action.QUARANTINED)
            box.done(message, move=not left, flag=outcome.action is Action.QUARANTINED)
            outcomes.append(outcome)
    return outcomes
