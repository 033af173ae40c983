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
from dataclasses import dataclass

from ..store.base import Store
from ..store.rows import BounceRecord
from .bounces import Action, Category, Policy, Report, parse_report
from .provenance import Subject, subject_of
from .suppressions import SuppressionList
from .verp import VerpCodec

__all__ = ["BounceLog", "BounceRecord", "Outcome"]

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
