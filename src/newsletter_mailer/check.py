"""The pre-send check: every problem in an issue (and, for deliverability, in the settings) as
``file:line: level: message``. Errors stop ``send``; warnings are shown and do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import markup
from .config import Settings
from .errors import IssueError
from .issue import Issue, read_issue
from .render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, render_issue

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    level: Level
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class Source:
    """One piece of Markdown in the issue file and the line it starts on."""

    text: str
    line: int


def markdown_sources(issue: Issue) -> list[Source]:
    sources = [Source(issue.intro, issue.intro_line)]
    sources += [Source(s.body, s.line + 1) for s in issue.sections]
    sources += [Source(s.title, s.line) for s in issue.sections]
    sources += [Source(h.text, h.line) for h in issue.highlights]
    sources += [Source(e.title, e.line) for e in issue.events]
    if issue.signoff:
        sources.append(Source(issue.signoff, _front_line(issue, "signoff")))
    return sources


def _front_line(issue: Issue, key: str) -> int:
    for number, line in enumerate(issue.source.splitlines(), 1):
        if re.match(rf"^{key}\s*:", line):
            return number
    return 1


_ABSOLUTE = re.compile(r"^(https?://[^\s/]+|mailto:[^\s@]+@[^\s@]+)", re.IGNORECASE)


def link_findings(issue: Issue) -> list[Finding]:
    file = str(issue.path)
    found: list[Finding] = []
    for source in markdown_sources(issue):
        for ref in markup.references(source.text, source.line):
            if ref.kind == "image":
                if not ref.text:
                    found.append(Finding(file, ref.line, "error",
                                         f"image {ref.url} has no alt text: write ![what it shows](url)"))
                if ref.url.lower().startswith("http://"):
                    found.append(Finding(file, ref.line, "warning",
                                         f"image {ref.url} is served over http: use https"))
                elif not _ABSOLUTE.match(ref.url):
                    found.append(Finding(file, ref.line, "error",
                                         f"image {ref.url!r} is not an absolute https URL"))
            elif ref.url.startswith("#"):
                continue
            elif not _ABSOLUTE.match(ref.url) and "nlm" not in ref.url:
                found.append(Finding(file, ref.line, "error",
                                     f"link {ref.url!r} is not an absolute URL or mailto: address"))
    for event in issue.events:
        if event.link and not _ABSOLUTE.match(event.link):
            found.append(Finding(file, event.line, "error",
                                 f"event link {event.link!r} is not an absolute URL"))
    return found


def size_findings(issue: Issue, html_bytes: int) -> list[Finding]:
    kb = html_bytes / 1024
    if html_bytes >= GMAIL_CLIP_BYTES:
        return [Finding(str(issue.path), None, "error",
                        f"HTML is {kb:.0f} KB: Gmail clips messages from 102 KB; shorten the issue")]
    if html_bytes >= SIZE_WARNING_BYTES:
        return [Finding(str(issue.path), None, "warning",
                        f"HTML is {kb:.0f} KB, close to Gmail's 102 KB clipping limit")]
    return []


def check_issue(path: Path, settings: Settings) -> list[Finding]:
    """Every finding for one issue; a file that cannot be parsed gives its one error."""
    try:
        issue = read_issue(path)
    except IssueError as exc:
        return [Finding(exc.file or str(path), exc.line, "error", exc.message)]
    findings = link_findings(issue)
    try:
        rendered = render_issue(issue, settings)
    except IssueError as exc:
        return [*findings, Finding(exc.file or str(path), exc.line, "error", exc.message)]
    findings += size_findings(issue, rendered.html_bytes)
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def run_check(path: Path, settings: Settings) -> list[Finding]:
    """The check ``send`` runs before it sends."""
    return check_issue(path, settings)
