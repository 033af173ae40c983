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
import sqlite3
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
from ..errors import StoreError
from .database import connect, transaction
from .sqlite import SQLiteSuppressionRows

__all__ = ["SCHEMA", "BounceLog", "BounceRecord", "Outcome", "bounce_log", "process_imap", "process_paths"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS bounce_reports (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    received     REAL NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    address      TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    issue        TEXT NOT NULL DEFAULT '',
    category     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT '',
    diagnostic   TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bounce_reports_by_address ON bounce_reports (address, category, received);
CREATE INDEX IF NOT EXISTS bounce_reports_by_issue ON bounce_reports (issue);
"""
_ISSUE_KEY = "CASE issue WHEN '' THEN 'day ' || date(received, 'unixepoch') ELSE issue END"
_MESSAGE_ID = re.compile(r"<([^<>@\s]{1,200}@[^<>\s]{1,200})>")


@dataclass(frozen=True)
class Outcome:
    """One processed message: what it said and what was done."""

    source: str
    report: Report
    address: str
    issue: str
    action: Action


@dataclass(frozen=True)
class BounceRecord:
    address: str
    issue: str
    category: str
    status: str
    diagnostic: str
    action: str
    received: float


class BounceLog:
    def __init__(self, db: sqlite3.Connection, policy: Policy | None = None, verp: VerpCodec | None = None) -> None:
        self.db = db
        self.policy = policy or Policy()
        self.verp = verp
        db.executescript(SCHEMA)

    def process(self, source: str, data: bytes) -> Outcome:
        """Read one returned message, record it, and suppress its recipient where the policy says."""
        fingerprint = hashlib.sha256(data).hexdigest()
        report = parse_report(data)
        address, issue = self._recipient(data, report)
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM bounce_reports WHERE fingerprint = ?", (fingerprint,)).fetchone():
                return Outcome(source, report, address, issue, Action.DUPLICATE)
            action = self._decide(report, address, issue)
            self.db.execute(
                "INSERT INTO bounce_reports (fingerprint, received, source, address, issue, category, status,"
                " diagnostic, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    time.time(),
                    source,
                    address,
                    issue,
                    report.category.value,
                    report.status,
                    report.diagnostic,
                    action.value,
                ),
            )
            if action is Action.SUPPRESSED:
                reason = "complained" if report.category is Category.COMPLAINT else "bounced"
                detail = " ".join(p for p in (report.category.value, report.status, report.diagnostic) if p)
                SuppressionList(SQLiteSuppressionRows(self.db)).add(
                    address, reason, f"{issue or 'bounce report'}: {detail}"[:400]
                )
        return Outcome(source, report, address, issue, action)

    def _decide(self, report: Report, address: str, issue: str) -> Action:
        if not address and report.category in (Category.HARD, Category.SOFT, Category.COMPLAINT):
            return Action.IGNORED
        soft_issues = 0
        if report.category is Category.SOFT:
            since = time.time() - self.policy.window_days * 86400
            # A report with no known issue counts as one issue per day it arrived.
            key = issue or time.strftime("day %Y-%m-%d", time.gmtime())
            soft_issues = 1 + int(
                self.db.execute(
                    f"SELECT COUNT(DISTINCT {_ISSUE_KEY}) FROM bounce_reports WHERE address = ?"
                    f" AND category = 'soft' AND received >= ? AND {_ISSUE_KEY} != ?",
                    (address, since, key),
                ).fetchone()[0]
            )
        return self.policy.decide(report.category, soft_issues)

    def _recipient(self, data: bytes, report: Report) -> tuple[str, str]:
        """(address, issue) the report is about; ('', '') when nobody of ours can be named."""
        text = data.decode("latin-1")
        if self.verp is not None:
            for row in self.verp.find(text):
                found = self.db.execute("SELECT address, issue FROM deliveries WHERE id = ?", (row,)).fetchone()
                if found:
                    return str(found[0]), str(found[1])
        for message_id in dict.fromkeys(_MESSAGE_ID.findall(text)):
            found = self.db.execute(
                "SELECT address, issue FROM deliveries WHERE message_id = ?", (f"<{message_id}>",)
            ).fetchone()
            if found and (not report.recipients or found[0].lower() in {r.lower() for r in report.recipients}):
                return str(found[0]), str(found[1])
        for raw in report.recipients:
            try:
                address = normalise_address(raw)
            except EmailNotValidError:
                continue
            found = self.db.execute(
                "SELECT address, issue FROM deliveries WHERE address = ? COLLATE NOCASE ORDER BY sent_at DESC",
                (address,),
            ).fetchone()
            if found:
                return str(found[0]), str(found[1])
        return "", ""

    def for_issue(self, issue: str) -> list[BounceRecord]:
        return [
            BounceRecord(*row)
            for row in self.db.execute(
                "SELECT address, issue, category, status, diagnostic, action, received FROM bounce_reports"
                " WHERE issue = ? ORDER BY id",
                (issue,),
            )
        ]


@contextmanager
def bounce_log(settings: Settings) -> Iterator[BounceLog]:
    """The workspace's bounce log, with its policy and VERP codec from the settings."""
    if settings.store.url:
        raise StoreError(
            "bounce processing keeps its records in the workspace's SQLite file and does not work with "
            "[store] url yet: run it from a workspace without a store URL"
        )
    b = settings.bounces
    verp = VerpCodec.from_signer(signer_for(settings), b.address) if b.address else None
    db = connect(settings.database_path)
    try:
        yield BounceLog(db, Policy(b.soft_threshold, b.soft_window_days), verp)
    finally:
        db.close()


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
