"""The pre-send check: every problem in an issue (and, for deliverability, in the settings) as
``file:line: level: message``. Errors stop ``send``; warnings are shown and do not.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ..audience.links import signer_for
from ..audience.subscribers import ListReport, read_subscribers
from ..config import Settings, key_line
from ..errors import IssueError, IssueNotFound, IssueProblems, MergeFieldError, SubscriberListError
from . import markup
from .envelope import MessageTemplate, preview_subscriber
from .images import ImageResolver, image_blocks, is_local
from .issue import Issue, read_issue
from .merge import Context, html_contexts, safe_url
from .palette import DEFAULT_ACCENT, MIN_CONTRAST, contrast, palette_for, parse_colour
from .render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, RenderedIssue, render_issue

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
        sources.append(Source(issue.signoff, issue.signoff_line))
    return sources


_ABSOLUTE = re.compile(r"^(https?://[^\s/]+|mailto:[^\s@]+@[^\s@]+)", re.IGNORECASE)


def link_findings(issue: Issue) -> list[Finding]:
    file = str(issue.path)
    found: list[Finding] = []
    for source in markdown_sources(issue):
        for ref in markup.references(source.text, source.line):
            if ref.kind == "image":
                if not ref.text:
                    found.append(
                        Finding(
                            file, ref.line, "error", f"image {ref.url} has no alt text: write ![what it shows](url)"
                        )
                    )
                if ref.url.lower().startswith("http://"):
                    found.append(Finding(file, ref.line, "warning", f"image {ref.url} is served over http: use https"))
                elif not _ABSOLUTE.match(ref.url) and not is_local(ref.url):  # a file: image_findings
                    found.append(Finding(file, ref.line, "error", f"image {ref.url!r} is not an absolute https URL"))
            elif ref.url.startswith("#"):
                continue
            elif not _ABSOLUTE.match(ref.url) and "nlm" not in ref.url:
                found.append(
                    Finding(file, ref.line, "error", f"link {ref.url!r} is not an absolute URL or mailto: address")
                )
    for event in issue.events:
        if event.link and not _ABSOLUTE.match(event.link):
            found.append(Finding(file, event.line, "error", f"event link {event.link!r} is not an absolute URL"))
    return found


def size_findings(issue: Issue, html_bytes: int) -> list[Finding]:
    kb = html_bytes / 1024
    if html_bytes >= GMAIL_CLIP_BYTES:
        return [
            Finding(
                str(issue.path),
                None,
                "error",
                f"HTML is {kb:.0f} KB: Gmail clips messages from 102 KB; shorten the issue",
            )
        ]
    if html_bytes >= SIZE_WARNING_BYTES:
        return [
            Finding(str(issue.path), None, "warning", f"HTML is {kb:.0f} KB, close to Gmail's 102 KB clipping limit")
        ]
    return []


# Lighthouse's list of link texts that do not describe their target (its link-text audit),
# with the ones real issues write: "link", "this page", "click". Any text ending in "here"
# ("Sign it here", "Register here") is vague as well.
VAGUE_LINK_TEXT = frozenset(
    {
        "click here",
        "click this",
        "go",
        "here",
        "information",
        "learn more",
        "more",
        "more info",
        "more information",
        "right here",
        "read more",
        "see more",
        "start",
        "this",
        "click",
        "link",
        "this link",
        "this page",
        "find out more",
        "details",
        "continue",
    }
)


def is_vague_link_text(text: str) -> bool:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    plain = " ".join(words)
    return plain in VAGUE_LINK_TEXT or (bool(words) and words[-1] == "here")


def link_text_findings(issue: Issue) -> list[Finding]:
    """Links whose text says nothing out of context: screen readers list links on their own."""
    found = []
    for source in markdown_sources(issue):
        for ref in markup.references(source.text, source.line):
            if ref.kind != "image" and is_vague_link_text(ref.text):
                found.append(
                    Finding(
                        str(issue.path),
                        ref.line,
                        "warning",
                        f"link text {ref.text!r} says nothing out of context; name where it goes",
                    )
                )
    return found


def accent_findings(settings: Settings) -> list[Finding]:
    """The accent colour is used for headings, links and buttons in light and dark mode."""
    accent = settings.brand.accent
    line = _setting_line(settings, "brand", "accent")
    file = str(settings.config_path)
    rgb = parse_colour(accent)
    if rgb is None:
        return [
            Finding(
                file, line, "warning", f"[brand] accent {accent!r} is not a colour like #1a6fb5; using {DEFAULT_ACCENT}"
            )
        ]
    palette = palette_for(accent)
    if not palette.adjusted:
        return []
    ratio = contrast(rgb, (255, 255, 255))
    return [
        Finding(
            file,
            line,
            "warning",
            f"[brand] accent {accent} on white has contrast {ratio:.1f}:1, under {MIN_CONTRAST}:1: "
            f"headings and links use {palette.text_light} instead; buttons keep {accent} with "
            f"{palette.button_text} text",
        )
    ]


DIARY_PAST_DAYS = 7  # a diary entry this far before the issue's date is most likely a wrong year


def content_findings(issue: Issue) -> list[Finding]:
    """Highlights that link nowhere, and diary events long past when the issue goes out."""
    file = str(issue.path)
    found = [
        Finding(
            file,
            h.line,
            "warning",
            f"highlight {h.text!r} matches no section heading, so it links nowhere: use the heading's words",
        )
        for h in issue.highlights
        if not h.anchor and "](" not in h.text
    ]
    if issue.date is not None:
        for event in issue.events:
            days = (issue.date - event.date).days
            if days > DIARY_PAST_DAYS:
                found.append(
                    Finding(
                        file,
                        event.line,
                        "warning",
                        f"event {event.title!r} on {event.date.isoformat()} is {days} days before the issue's "
                        f"date {issue.date.isoformat()}: a wrong year?",
                    )
                )
    return found


def subject_findings(issue: Issue) -> list[Finding]:
    file, line = str(issue.path), issue.line_of("subject")
    subject = issue.subject
    letters = [c for c in subject if c.isalpha()]
    found = []
    if len(subject) > 150:
        found.append(
            Finding(
                file,
                line,
                "warning",
                f"subject is {len(subject)} characters; inboxes show about 60, filters distrust more than 150",
            )
        )
    if len(letters) >= 4 and all(c.isupper() for c in letters):
        found.append(Finding(file, line, "warning", "subject is all capitals, which spam filters punish"))
    return found


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (DMARC): the same domain, or one a subdomain of the other."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return domain == from_domain or domain.endswith("." + from_domain) or from_domain.endswith("." + domain)


def _setting_line(settings: Settings, section: str, key: str) -> int | None:
    if not settings.found:
        return None
    return key_line(settings.config_path.read_text(encoding="utf-8"), section, key)


def settings_label(settings: Settings) -> str:
    """Where settings findings point: the file, or the defaults when there is no file to name."""
    return str(settings.config_path) if settings.found else f"defaults (no {settings.config_path.name})"


def _unreachable(host: str) -> bool:
    """A host that only the sender's own machine or network can reach."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def base_url_findings(settings: Settings) -> list[Finding]:
    """Through a real relay, every recipient's unsubscribe link must reach ``serve`` over https."""
    if not settings.smtp.host:
        return []  # the local outbox: links to this machine are what a trial run wants
    file, line = settings_label(settings), _setting_line(settings, "newsletter", "base_url")
    url = settings.newsletter.base_url
    parts = urlsplit(url)
    found = []
    if _unreachable(parts.hostname or ""):
        found.append(
            Finding(
                file,
                line,
                "error",
                f"base_url {url} is on this machine or its private network: every recipient's unsubscribe "
                "link would point there; set [newsletter] base_url to where `newsletter serve` is public",
            )
        )
    if parts.scheme != "https":
        found.append(
            Finding(
                file,
                line,
                "error",
                f"base_url {url} is plain http: the one-click unsubscribe header (RFC 8058) needs https",
            )
        )
    return found


def dkim_findings(settings: Settings) -> list[Finding]:
    """DKIM matters only for mail that leaves this machine: none for the local outbox."""
    if not settings.smtp.host:
        return []
    file, line = settings_label(settings), _setting_line(settings, "dkim", "domain")
    from_domain = settings.newsletter.from_domain
    if not settings.dkim.enabled:
        return [
            Finding(
                file,
                line,
                "warning",
                "DKIM is not configured: unsigned bulk mail is filtered by Gmail and Yahoo "
                "([dkim] domain, selector, key_file; `newsletter dkim keygen`)",
            )
        ]
    if not _aligned(settings.dkim.domain, from_domain):
        return [
            Finding(
                file,
                line,
                "warning",
                f"DKIM domain {settings.dkim.domain} is not aligned with the From domain "
                f"{from_domain}: DMARC will not pass on it",
            )
        ]
    return []


def settings_findings(settings: Settings) -> list[Finding]:
    file = settings_label(settings)
    news = settings.newsletter
    found = base_url_findings(settings) + dkim_findings(settings)
    from_domain = news.from_domain
    list_domain = news.list_id_value.rsplit(".", 2)
    if len(list_domain) < 2 or not _aligned(".".join(list_domain[-2:]), from_domain):
        found.append(
            Finding(
                file,
                _setting_line(settings, "newsletter", "list_id"),
                "warning",
                f"List-Id {news.list_id_value} is not under the From domain {from_domain}",
            )
        )
    if not news.postal_address:
        found.append(
            Finding(
                file,
                _setting_line(settings, "newsletter", "postal_address"),
                "warning",
                "no postal address: the footer should carry one (CAN-SPAM, and filters look for it)",
            )
        )
    if from_domain in ("localhost", "example.org", "example.com") and settings.smtp.host:
        found.append(
            Finding(
                file,
                _setting_line(settings, "newsletter", "from"),
                "warning",
                f"From domain {from_domain} is a placeholder; mail from it will not be delivered",
            )
        )
    return found


def image_findings(issue: Issue, settings: Settings) -> list[Finding]:
    """The editor's own image files (and remote ones the archive copies): each one that cannot
    be published, at its line; a remote image that stays remote is checked by link_findings."""
    images = ImageResolver(issue, settings)
    found = []
    for src, line in image_blocks(issue):
        try:
            images.served(src, line)
        except IssueError as exc:
            found.append(Finding(exc.file or str(issue.path), exc.line, "error", exc.message))
    return found


def issue_images(issue: Issue) -> set[str]:
    return {
        ref.url
        for source in markdown_sources(issue)
        for ref in markup.references(source.text, source.line)
        if ref.kind == "image"
    }


def sample_message(rendered: RenderedIssue, settings: Settings) -> tuple[bytes, str]:
    """One real message, for the preview recipient, and the unsubscribe URL it must carry."""
    signer = signer_for(settings)
    subscriber = preview_subscriber(settings)
    url = signer.unsubscribe_url(settings.newsletter.base_url, subscriber.email)
    return MessageTemplate(rendered, settings, signer).envelope(subscriber).data, url


def message_findings(data: bytes, url: str, rendered: RenderedIssue, settings: Settings) -> list[Finding]:
    """Look at a finished message as a mailbox provider would. Images from the issue are checked
    at their line by ``link_findings``; this looks at the template's."""
    file = str(rendered.issue.path)
    template_file = "templates/newsletter.mjml"
    message = message_from_bytes(data, policy=policy.default)
    found = []
    if url not in (message.get("List-Unsubscribe") or ""):
        found.append(Finding(file, None, "error", "the List-Unsubscribe header is missing"))
    if message.get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click":
        found.append(Finding(file, None, "error", "the List-Unsubscribe-Post (one-click) header is missing"))
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    html = html_part.get_content() if html_part is not None else ""
    text = text_part.get_content() if text_part is not None else ""
    if url not in html:
        found.append(
            Finding(
                template_file,
                None,
                "error",
                "the HTML has no unsubscribe link: the template must use {{ unsubscribe_url }}",
            )
        )
    if url not in text:
        found.append(Finding(file, None, "error", "the text part has no unsubscribe link"))
    message_id = message.get("Message-ID") or ""
    if not _aligned(message_id.rpartition("@")[2].strip(">"), settings.newsletter.from_domain):
        found.append(Finding(file, None, "warning", f"Message-ID {message_id} is not under the From domain"))
    copies = ImageResolver(rendered.issue, settings)
    from_issue = issue_images(rendered.issue) | {copies.address(image) for image in copies.all()}
    for img in re.findall(r"<img\b[^>]*>", rendered.html):
        src = re.search(r'\bsrc="([^"]*)"', img)
        alt = re.search(r'\balt="([^"]*)"', img)
        where = src.group(1) if src else "(no src)"
        if where in from_issue:
            continue
        if alt is None or not alt.group(1).strip():
            found.append(Finding(template_file, None, "error", f"image {where} in the template has no alt text"))
        if where.startswith("http://"):
            found.append(Finding(template_file, None, "warning", f"image {where} is served over http"))
    return found


MAX_ROW_FINDINGS = 20


def _fill_findings(rendered: RenderedIssue, subscribers: Path) -> tuple[list[Finding], ListReport]:
    """Fill every row of the list as a send would (microseconds a row), so an expression that
    fails for one row stops the send before anything is sent, not after 197 messages; a value
    that fills a link's whole address but is no http(s) or mailto: link (``javascript:...``)
    is written as an empty link, and said here."""
    report = ListReport(subscribers)
    found: list[Finding] = []
    url_slots = _whole_url_slots(rendered)
    failing = 0
    try:
        for subscriber in read_subscribers(subscribers, report):
            try:
                values = rendered.fields.values(subscriber.merge_values(), "")
            except MergeFieldError as exc:
                failing += 1
                if failing <= MAX_ROW_FINDINGS:
                    where = f"{exc.file}:{exc.line}: " if exc.file else ""
                    found.append(Finding(str(subscribers), subscriber.line, "error", f"{where}{exc.message}"))
                continue
            for slot in url_slots:
                if values[slot] and not safe_url(values[slot]) and len(found) < 2 * MAX_ROW_FINDINGS:
                    message = (
                        f"{{{{ {rendered.fields.sources[slot]} }}}} is {values[slot][:60]!r} here, not an http(s) "
                        "or mailto: link: this recipient's link will be empty"
                    )
                    found.append(Finding(str(subscribers), subscriber.line, "warning", message))
    except SubscriberListError as exc:
        return [*found, Finding(exc.file or str(subscribers), exc.line, "error", exc.message)], report
    if failing > MAX_ROW_FINDINGS:
        more = f"{failing - MAX_ROW_FINDINGS} more rows cannot be filled (the first {MAX_ROW_FINDINGS} are above)"
        found.append(Finding(str(subscribers), None, "error", more))
    return found, report


def _whole_url_slots(rendered: RenderedIssue) -> list[int]:
    """The editors' merge fields that make up a whole href or src in the HTML."""
    slots = {
        int(m.group(1))
        for m, context in html_contexts(rendered.html, rendered.fields.pattern)
        if context is Context.HTML_URL
    }
    return sorted(slot for slot in slots if slot >= 2)  # 0 and 1: the unsubscribe URL and the address


def field_findings(rendered: RenderedIssue, subscribers: Path, columns: tuple[str, ...]) -> list[Finding]:
    """A merge field naming no column of the list: a typo sends "Hello ," to everyone, and a
    ``default(...)`` would only hide it."""
    found = []
    for source, (file, line), named in rendered.fields.named_columns():
        for name in sorted(named - set(columns)):
            found.append(
                Finding(
                    file,
                    line,
                    "error",
                    f"merge field {{{{ {source} }}}}: {name!r} is no column of {subscribers}; "
                    f"its columns: {', '.join(columns)}",
                )
            )
    return found


def list_findings(rendered: RenderedIssue, settings: Settings, subscribers: Path | None) -> list[Finding]:
    """The issue's merge fields against the list it goes to: given, or the settings' list."""
    path = subscribers or settings.path(settings.newsletter.subscribers)
    if subscribers is None and not path.exists():
        if any(named for _, _, named in rendered.fields.named_columns()):
            return [
                Finding(
                    str(rendered.issue.path),
                    None,
                    "warning",
                    f"could not check the merge fields: there is no subscriber list at {path} (give --subscribers CSV)",
                )
            ]
        return []
    found, report = _fill_findings(rendered, path)
    if report.columns:
        found = field_findings(rendered, path, report.columns) + found
    return found


def check_issue(path: Path, settings: Settings, subscribers: Path | None = None) -> list[Finding]:
    """Every finding for one issue, the settings it is sent with and the list it goes to; a file
    that cannot be parsed gives its errors. A missing file raises IssueNotFound."""
    try:
        issue = read_issue(path)
    except IssueNotFound:
        raise  # a mistake on the command line, not a finding in the issue
    except IssueProblems as exc:
        return [Finding(e.file or str(path), e.line, "error", e.message) for e in exc.errors]
    except IssueError as exc:
        return [Finding(exc.file or str(path), exc.line, "error", exc.message)]
    findings = link_findings(issue) + link_text_findings(issue) + subject_findings(issue) + content_findings(issue)
    findings += settings_findings(settings) + accent_findings(settings) + image_findings(issue, settings)
    try:
        rendered = render_issue(issue, settings)
        findings += size_findings(issue, rendered.html_bytes)
        findings += message_findings(*sample_message(rendered, settings), rendered, settings)
    except IssueError as exc:
        failed = Finding(exc.file or str(path), exc.line, "error", exc.message)
        return findings if failed in findings else [*findings, failed]  # an image's error, said once
    return findings + list_findings(rendered, settings, subscribers)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def run_check(path: Path, settings: Settings, subscribers: Path | None = None) -> list[Finding]:
    """The check ``send`` runs before it sends."""
    return check_issue(path, settings, subscribers)
