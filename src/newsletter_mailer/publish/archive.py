"""Which issues the archive holds: those in the issues folder that the journal shows were sent.
Test sends never reach the journal and a draft has no sent row, so neither is ever published.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..compose.issue import Issue, read_issue

__all__ = ["Archive", "SentIssue", "find_sent"]


@dataclass(frozen=True)
class SentIssue:
    """A published issue and when its first message was sent (the archive's fixed date)."""

    issue: Issue
    sent_at: float  # epoch seconds, from the journal

    @property
    def key(self) -> str:
        return self.issue.key

    @property
    def sent(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.sent_at, dt.UTC).replace(microsecond=0)

    def day(self, timezone: str) -> dt.date:
        """The issue's date as the editor wrote it, or the day it was sent where the newsletter is."""
        if self.issue.date:
            return self.issue.date
        return self.sent.astimezone(zoneinfo.ZoneInfo(timezone) if timezone else dt.UTC).date()


@dataclass(frozen=True)
class Archive:
    issues: tuple[SentIssue, ...]  # newest first
    missing: tuple[str, ...]  # sent issues whose file is not in the folder (named by their key)


def find_sent(folder: Path, sent: Mapping[str, float]) -> Archive:
    """The sent issues whose file is in ``folder``, newest first; a sent issue whose file was
    moved or deleted is named in ``missing`` rather than guessed at."""
    if not sent or not folder.is_dir():
        return Archive((), tuple(sorted(sent)))
    found = {path.stem: path for path in sorted(folder.glob("*.md")) if path.is_file() and path.stem in sent}
    issues = [SentIssue(read_issue(path), sent[key]) for key, path in found.items()]
    issues.sort(key=lambda s: (-s.sent_at, s.key))
    return Archive(tuple(issues), tuple(sorted(set(sent) - set(found))))
