"""What was sent: one issue in detail (``newsletter status STEM``, with or without the issue file)
or every issue at a glance (``newsletter status``), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audience.bounce_log import BounceLog
from ..audience.suppressions import SuppressionList
from ..config import Settings
from ..store.base import Store, WorkerInfo
from ..store.journal import IssueStatus, issue_status
from ..store.rows import BounceRecord
from .stores import existing_store

__all__ = ["IssueDetail", "IssueLine", "issue_detail", "issue_of", "overview"]


@dataclass(frozen=True)
class IssueDetail:
    report: IssueStatus
    skipped: dict[str, int]  # recipients skipped as suppressed, by the list's reason now
    bounced: tuple[BounceRecord, ...]
    workers: tuple[WorkerInfo, ...]
    runs: tuple[tuple[float, str], ...] = ()  # each send's start and its --where ("" for the whole list)

    @property
    def nothing(self) -> bool:
        return not any(self.report.counts.values()) and not self.workers


@dataclass(frozen=True)
class IssueLine:
    """One issue in the overview: when its list was first loaded, and what came of it."""

    issue: str
    started: float
    sent: int
    failed: int
    possibly_duplicated: int
    bounced: int
    complained: int
    unsubscribed_since: int  # unsubscribes recorded since the issue started going out
    pending: int


def issue_of(argument: str) -> str:
    """The journal's name of an issue: ``2027-01``, ``issues/2027-01.md`` (the file need not exist)."""
    return Path(argument).stem if argument.endswith(".md") else Path(argument).name


def issue_detail(settings: Settings, issue: str) -> IssueDetail:
    with existing_store(settings) as store:
        if store is None:
            return IssueDetail(issue_status(None, issue), {}, (), ())
        return IssueDetail(
            issue_status(store, issue),
            store.suppressed_by_reason(issue),
            tuple(BounceLog(store).for_issue(issue)),
            tuple(store.workers(issue)),
            tuple(store.runs(issue)),
        )


def overview(settings: Settings) -> list[IssueLine]:
    """Every issue the journal knows, newest first."""
    with existing_store(settings) as store:
        if store is None:
            return []
        unsubscribed = sorted(s.created for s in SuppressionList(store) if s.reason == "unsubscribed")
        return [_line(store, issue, started, unsubscribed) for issue, started in store.issues()]


def _line(store: Store, issue: str, started: float, unsubscribed: list[float]) -> IssueLine:
    counts = store.counts(issue)
    reports = BounceLog(store).for_issue(issue)
    return IssueLine(
        issue=issue,
        started=started,
        sent=counts["sent"],
        failed=counts["failed"],
        possibly_duplicated=counts["resent"],
        bounced=len({r.address for r in reports if r.category in ("hard", "soft")}),
        complained=len({r.address for r in reports if r.category == "complaint"}),
        unsubscribed_since=sum(1 for when in unsubscribed if when >= started),
        pending=counts["pending"] + counts["sending"],
    )
