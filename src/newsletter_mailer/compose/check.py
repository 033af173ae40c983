"""The pre-send check: every problem in an issue (and, for deliverability, in the settings) as
``file:line: level: message``. Errors stop ``send``; warnings are shown and do not; notes say
what the check found out (how many readers get each variant).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ..audience.choices import reader_defaults
from ..audience.links import signer_for
from ..audience.subscribers import DERIVED_COLUMNS, ListReport, Subscriber, list_columns, read_subscribers
from ..config import Settings, key_line
from ..errors import IssueError, IssueNotFound, IssueProblems, MergeFieldError, SubscriberListError
from . import markup
from .editions import Editions
from .envelope import MessageTemplate, preview_subscriber
from .i18n import SHIPPED, is_shipped
from .images import ImageResolver, image_blocks, is_local
from .issue import Issue, read_issue
from .merge import FIXED_SLOTS, Context, html_contexts, safe_url
from .palette import DEFAULT_ACCENT, LIGHT_SURFACES, MIN_CONTRAST, contrast, palette_for, parse_colour
from .render import COLUMN_WIDTH, GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, RenderedIssue, render_issue
from .slips import find_slips, suggest_column
from .translations import differences, reach, translations_of
from .variants import ConditionalPart, Segmenter, Variant

Level = Literal["error", "warning", "note"]


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


def _unsized_images(source: Source) -> list[tuple[int, str]]:
    """Images whose width Outlook cannot know: Markdown images that share their paragraph (a
    sentence, a list item, two in a row) and raw ``<img>`` tags without a pixel width."""
    found: list[tuple[int, str]] = []
    tokens = markup.parse(source.text)
    for n, token in enumerate(tokens):
        line = source.line + (token.map[0] if token.map else 0)
        if token.type == "html_block":
            found += [(line, tag) for tag in _IMG_TAG.findall(token.content) if not _IMG_WIDTH.search(tag)]
        if token.type != "inline":
            continue
        alone = n > 0 and tokens[n - 1].type == "paragraph_open" and tokens[n - 1].level == 0
        if alone and markup.as_image(token, line) is not None:
            continue  # a full-width image, drawn at the column's width
        for child in token.children or []:
            if child.type == "image":
                found.append((line, f"![{child.content}]({child.attrs.get('src', '')})"))
            elif child.type == "html_inline" and _IMG_TAG.match(child.content) and not _IMG_WIDTH.search(child.content):
                found.append((line, child.content))
            line += child.type in ("softbreak", "hardbreak")
    return found


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_WIDTH = re.compile(r"""\swidth\s*=\s*("\d+"|'\d+'|\d+(?=[\s/>]))""", re.IGNORECASE)


def image_width_findings(issue: Issue) -> list[Finding]:
    """Each image given the column's width because its own is unknown, by line."""
    return [
        Finding(
            str(issue.path),
            line,
            "warning",
            f"image {image[:60]!r} has no pixel width, so Outlook for Windows draws it {COLUMN_WIDTH} px "
            'wide; give it one as HTML: <img src="..." alt="..." width="120">',
        )
        for source in markdown_sources(issue)
        for line, image in _unsized_images(source)
    ]


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


@dataclass(frozen=True)
class SizeReport:
    """How big the HTML is and how many sections of this issue's average size fit under Gmail's clip."""

    html_bytes: int
    sections: int
    per_section: int  # bytes a section adds, on average, layout and content
    clips_at: int | None  # the section count at which Gmail would clip; None without sections

    def __str__(self) -> str:
        line = f"HTML: {self.html_bytes / 1024:.1f} KB with {self.sections} section(s)"
        if self.clips_at is None:
            return line + f"; Gmail clips at {GMAIL_CLIP_BYTES // 1024} KB"
        return (
            f"{line} ({self.per_section / 1024:.1f} KB each); Gmail would clip it at {self.clips_at} "
            f"sections ({GMAIL_CLIP_BYTES // 1024} KB)"
        )


def size_report(issue: Issue, settings: Settings, rendered: RenderedIssue) -> SizeReport:
    """The size, and the clip point from the issue rendered again without its sections."""
    count = len(issue.sections)
    if not count:
        return SizeReport(rendered.html_bytes, 0, 0, None)
    bare = render_issue(dataclasses.replace(issue, sections=()), settings).html_bytes
    per_section = max((rendered.html_bytes - bare) // count, 1)
    room = GMAIL_CLIP_BYTES - rendered.html_bytes
    clips_at = count + room // per_section + 1 if room > 0 else count
    return SizeReport(rendered.html_bytes, count, per_section, clips_at)


def size_summary(path: Path, settings: Settings) -> SizeReport | None:
    """The size report of an issue file; None when it cannot be rendered (its findings say why)."""
    try:
        issue = read_issue(path)
        return size_report(issue, settings, render_issue(issue, settings))
    except IssueError:
        return None


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
    palette = palette_for(accent, settings.brand.text_accent)
    if palette.text_chosen:
        return _text_accent_findings(settings, palette.text_light)
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


def _text_accent_findings(settings: Settings, shade: str) -> list[Finding]:
    """[brand] text_accent is used as set; say so when it is hard to read on the card."""
    rgb = parse_colour(shade) or (0, 0, 0)
    ratio = min(contrast(rgb, parse_colour(surface) or (255, 255, 255)) for surface in LIGHT_SURFACES)
    if ratio >= MIN_CONTRAST:
        return []
    line = _setting_line(settings, "brand", "text_accent")
    return [
        Finding(
            str(settings.config_path),
            line,
            "warning",
            f"[brand] text_accent {settings.brand.text_accent} has contrast {ratio:.1f}:1 on the email's "
            f"light backgrounds, under {MIN_CONTRAST}:1: headings and links will be hard to read",
        )
    ]


DIARY_PAST_DAYS = 7  # a diary entry this far before the issue's date is most likely a wrong year


def content_findings(issue: Issue) -> list[Finding]:
    """Highlights that link nowhere, and diary events long past when the issue goes out."""
    file = str(issue.path)
    found = highlight_findings(issue)
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


def highlight_findings(issue: Issue) -> list[Finding]:
    """A highlight that names a section no heading has, at its line (with the closest heading);
    the highlights that link nowhere, in one warning that says how to name their sections."""
    file, titles = str(issue.path), [s.title for s in issue.sections]
    found = []
    for h in issue.highlights:
        if h.section and not h.anchor:
            close = difflib.get_close_matches(h.section, titles, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"the headings: {', '.join(map(repr, titles)) or 'none'}"
            found.append(
                Finding(
                    file, h.line, "warning", f"highlight names section {h.section!r}, which no ## heading is; {hint}"
                )
            )
    loose = [h for h in issue.highlights if not h.section and not h.anchor and "](" not in h.text]
    if loose:
        listed = "; ".join(f"line {h.line}: {h.text[:50]!r}" for h in loose)
        found.append(
            Finding(
                file,
                issue.line_of("highlights"),
                "warning",
                f"{plural_of(len(loose), 'highlight matches', 'highlights match')} no section heading, so "
                f"{'it links' if len(loose) == 1 else 'they link'} nowhere ({listed}): name the section, as in "
                "`- text → Heading` or `- text: ...` with `section: Heading` (docs/issue-file.md)",
            )
        )
    return found


def plural_of(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


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


def language_findings(settings: Settings) -> list[Finding]:
    """A language we ship no catalogue for is sent with English words and dates: said, not fatal."""
    news = settings.newsletter
    found = []
    if not is_shipped(news.language):
        found.append(
            Finding(
                settings_label(settings),
                _setting_line(settings, "newsletter", "language"),
                "warning",
                f"[newsletter] language {news.language!r} has no catalogue of ours "
                f"({', '.join(SHIPPED)}): the fixed words and dates are in English",
            )
        )
    unknown = [tag for tag in news.languages if not is_shipped(tag)]
    if unknown:  # offered on the signup form, yet its pages and mail could not be in it
        found.append(
            Finding(
                settings_label(settings),
                _setting_line(settings, "newsletter", "languages"),
                "warning",
                f"[newsletter] languages: {', '.join(map(repr, unknown))} has no catalogue of ours "
                f"({', '.join(SHIPPED)}): a reader who chooses it gets the signup pages and mail in English",
            )
        )
    return found


def settings_findings(settings: Settings) -> list[Finding]:
    file = settings_label(settings)
    news = settings.newsletter
    found = base_url_findings(settings) + dkim_findings(settings) + language_findings(settings)
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


class RowFill:
    """Fills each row of the list as a send would (microseconds a row), so an expression that fails
    for one row stops the send before anything is sent, not after 197 messages; a value that fills
    a link's whole address but is no http(s) or mailto: link (``javascript:...``) is written as an
    empty link, and said here. Rows come one at a time: a send checks the list as it loads it."""

    def __init__(self, rendered: RenderedIssue, subscribers: Path, defaults: Mapping[str, str] | None = None) -> None:
        self.rendered, self.path = rendered, subscribers
        self.defaults = dict(defaults or {})  # cells every reader has from the settings (``topics``)
        self.report = ListReport(subscribers)  # the reader's, once ``watch`` has been given it
        self.found: list[Finding] = []
        self.url_slots = _whole_url_slots(rendered)
        self.failing = 0
        self.languages: Counter[str] = Counter()  # the rows of each language cell, for the reach per translation
        self.segmenter = Segmenter(rendered.issue.conditional_parts())
        self.tally: Counter[Variant] = Counter()  # an issue with conditions: the readers of each variant

    def row(self, subscriber: Subscriber) -> None:
        fields, path = self.rendered.fields, str(self.path)
        cells = {**self.defaults, **subscriber.merge_values()}
        if self.segmenter.parts:
            self.tally[self.segmenter.variant_of(cells)] += 1
        try:
            values = fields.values(cells, "")
        except MergeFieldError as exc:
            self.failing += 1
            if self.failing <= MAX_ROW_FINDINGS:
                where = f"{exc.file}:{exc.line}: " if exc.file else ""
                self.found.append(Finding(path, subscriber.line, "error", f"{where}{exc.message}"))
            return
        for slot in self.url_slots:
            if values[slot] and not safe_url(values[slot]) and len(self.found) < 2 * MAX_ROW_FINDINGS:
                message = (
                    f"{{{{ {fields.sources[slot]} }}}} is {values[slot][:60]!r} here, not an http(s) "
                    "or mailto: link: this recipient's link will be empty"
                )
                self.found.append(Finding(path, subscriber.line, "warning", message))

    def readers(self, readers: Iterable[Subscriber]) -> Iterator[Subscriber]:
        """Every reader a send reaches (the CSV's rows and confirmed signups, whose language was
        chosen on the form), their language counted on the way through."""
        for reader in readers:
            self.languages[dict(reader.fields).get("language", "")] += 1
            yield reader

    def watch(self, rows: Iterable[Subscriber], report: ListReport) -> Iterator[Subscriber]:
        """The rows, each filled in on its way through; ``report``: their reader's (its columns)."""
        self.report = report
        for subscriber in rows:
            self.row(subscriber)
            yield subscriber

    def findings(self) -> list[Finding]:
        """What the rows seen said, after the fields that name no column of the list, and before
        the rows that are sent but look wrong."""
        columns = self.report.columns
        if columns:
            columns = (*columns, *(c for c in self.defaults if c not in columns))
        found = field_findings(self.rendered, self.path, columns) if columns else []
        if columns:
            unknown = self.segmenter.unknown_columns(columns)
            found = condition_findings(self.rendered.issue, unknown, self.path, columns) + found
        found += self.found
        if self.failing > MAX_ROW_FINDINGS:
            more = (
                f"{self.failing - MAX_ROW_FINDINGS} more rows cannot be filled (the first {MAX_ROW_FINDINGS} are above)"
            )
            found.append(Finding(str(self.path), None, "error", more))
        return found + row_warnings(self.report) + self.reach_findings()

    def reach_findings(self) -> list[Finding]:
        """With translations beside the issue: how many readers get each language (a note) and
        those whose language has none, who get the main file (a warning), said before anything is
        sent."""
        translated = [t.language for t in translations_of(self.rendered.issue.path)]
        if not translated or not any(self.languages):
            return []
        lines = reach(self.languages.elements(), self.rendered.language, translated)
        return [
            Finding(str(self.path), None, "warning" if "no translation" in line else "note", line) for line in lines
        ]


def _fill_findings(
    rendered: RenderedIssue, subscribers: Path, defaults: Mapping[str, str] | None = None
) -> tuple[list[Finding], ListReport, Counter[Variant]]:
    """Every row of the list filled in (RowFill); the list's own faults as findings; the readers
    of each variant."""
    report = ListReport(subscribers)
    fill = RowFill(rendered, subscribers, defaults)
    try:
        for _ in fill.readers(fill.watch(read_subscribers(subscribers, report), report)):
            pass
    except SubscriberListError as exc:
        return (
            [*fill.findings(), Finding(exc.file or str(subscribers), exc.line, "error", exc.message)],
            report,
            fill.tally,
        )
    return fill.findings(), report, fill.tally


def row_warnings(report: ListReport) -> list[Finding]:
    """Rows that are sent but look wrong (extra cells, an overlong value), the first few at their line."""
    found = [Finding(str(report.path), line, "warning", message) for line, message in report.warnings]
    hidden = len(found) - MAX_ROW_FINDINGS + report.more_warnings
    if hidden > 0:
        more = f"{hidden} more rows look wrong (`newsletter subscribers check` lists them)"
        return [*found[:MAX_ROW_FINDINGS], Finding(str(report.path), None, "warning", more)]
    return found


def _whole_url_slots(rendered: RenderedIssue) -> list[int]:
    """The editors' merge fields that make up a whole href or src in the HTML."""
    slots = {
        int(m.group(1))
        for m, context in html_contexts(rendered.html, rendered.fields.pattern)
        if context is Context.HTML_URL
    }
    return sorted(slot for slot in slots if slot >= FIXED_SLOTS)  # the unsubscribe URL, address, preferences URL


def field_findings(rendered: RenderedIssue, subscribers: Path, columns: tuple[str, ...]) -> list[Finding]:
    """A merge field naming no column of the list: a typo sends "Hello ," to everyone, and a
    ``default(...)`` would only hide it."""
    found = []
    for source, (file, line), named in rendered.fields.named_columns():
        for name in sorted(named - set(columns) - DERIVED_COLUMNS):
            guess = suggest_column(name, columns)
            hint = f"did you mean `subscriber.{guess}`? " if guess else ""
            message = f"merge field {{{{ {source} }}}}: {name!r} is no column of {subscribers}; {hint}"
            found.append(Finding(file, line, "error", f"{message}its columns: {', '.join(columns)}"))
    return found


def list_findings(rendered: RenderedIssue, settings: Settings, subscribers: Path | None) -> list[Finding]:
    """The issue's merge fields against the list it goes to: given, or the settings' list."""
    path = subscribers or settings.path(settings.newsletter.subscribers)
    if subscribers is None and not path.exists():
        named = any(named for _, _, named in rendered.fields.named_columns())
        if named or rendered.issue.conditional_parts():
            return [
                Finding(
                    str(rendered.issue.path),
                    None,
                    "warning",
                    f"could not check the {'merge fields' if named else 'conditions'}: "
                    f"there is no subscriber list at {path} (give --subscribers CSV)",
                )
            ]
        return []
    found, _, tally = _fill_findings(rendered, path, reader_defaults(settings))
    if tally and not has_errors(found):
        found += variant_findings(rendered, settings, tally)
    return found


def condition_findings(
    issue: Issue, unknown: list[ConditionalPart], subscribers: Path, columns: tuple[str, ...]
) -> list[Finding]:
    """An ``only:`` naming no column of the list would quietly hide its part from everyone."""
    found = []
    for part in unknown:
        missing = ", ".join(repr(c) for c in sorted(part.condition.columns - set(columns)))
        message = f"only: {part.condition.source}: {missing} is no column of {subscribers}; its columns: "
        found.append(Finding(str(issue.path), part.line, "error", message + ", ".join(columns)))
    return found


def topic_findings(issue: Issue, settings: Settings) -> list[Finding]:
    """A condition that asks for a topic the preferences page does not offer (``"Dairy" in
    topics``) would quietly hide its part from every reader who chose on the page."""
    if not settings.preferences.enabled:
        return []
    offered = {topic.casefold() for topic in settings.preferences.topics}
    found = []
    for part in issue.conditional_parts():
        for column, text in sorted(part.condition.members):
            if column == "topics" and text.casefold() not in offered:
                message = (
                    f"only: {part.condition.source}: {text!r} is not one of [preferences] topics "
                    f"({', '.join(settings.preferences.topics)}): no reader who chose on the page gets {part.label}"
                )
                found.append(Finding(str(issue.path), part.line, "error", message))
    return found


def variant_findings(rendered: RenderedIssue, settings: Settings, tally: Counter[Variant]) -> list[Finding]:
    """How many readers get each variant, and its size: the largest is held to the size limits."""
    editions = Editions(rendered, settings, lambda r: MessageTemplate(r, settings, signer_for(settings)))
    counts = editions.counts(tally)
    file = str(rendered.issue.path)
    found = [
        Finding(file, None, "note", f"{c.readers} reader(s) get the issue {c.shows} ({c.html_bytes / 1024:.0f} KB)")
        for c in counts
    ]
    largest = max(counts, key=lambda c: c.html_bytes)
    found.append(
        Finding(file, None, "note", f"{len(counts)} variant(s); the largest is {largest.html_bytes / 1024:.0f} KB")
    )
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
    try:
        rendered = render_issue(issue, settings)
    except IssueError as exc:
        return _with_error(_source_findings(issue, settings, columns_of(settings, subscribers)), exc, path)
    return check_rendered(rendered, settings, subscribers) + translation_findings(issue)


def translation_findings(issue: Issue) -> list[Finding]:
    """Per translation beside the issue (``2026-12.fr.md``): what it lacks or adds against it."""
    found = []
    for translation in translations_of(issue.path):
        try:
            other = read_issue(translation.path)
        except IssueProblems as exc:
            found += [Finding(e.file or str(translation.path), e.line, "error", e.message) for e in exc.errors]
            continue
        except IssueError as exc:
            found.append(Finding(exc.file or str(translation.path), exc.line, "error", exc.message))
            continue
        for line, message in differences(issue, other):
            found.append(Finding(str(translation.path), line or None, "warning", f"{translation.language}: {message}"))
    return found


def check_rendered(rendered: RenderedIssue, settings: Settings, subscribers: Path | None = None) -> list[Finding]:
    """Every finding for an issue already rendered (a send checks the rendering it sends)."""
    columns = columns_of(settings, subscribers)
    return check_message(rendered, settings, columns) + list_findings(rendered, settings, subscribers)


def check_message(rendered: RenderedIssue, settings: Settings, columns: Sequence[str] = ()) -> list[Finding]:
    """Every finding but the list's: a send checks the list with RowFill as it loads it, so it
    gives no ``columns`` (the list's, which merge-field slips are matched against for a "did you
    mean"): the list is read once, by that pass."""
    issue = rendered.issue
    findings = _source_findings(issue, settings, columns) + size_findings(issue, rendered.html_bytes)
    try:
        findings += message_findings(*sample_message(rendered, settings), rendered, settings)
    except IssueError as exc:
        return _with_error(findings, exc, issue.path)
    return findings


def _source_findings(issue: Issue, settings: Settings, columns: Sequence[str]) -> list[Finding]:
    """What the issue file and the settings say before anything is rendered."""
    findings = slip_findings(issue, columns) + link_findings(issue) + link_text_findings(issue)
    findings += subject_findings(issue) + content_findings(issue) + image_width_findings(issue)
    findings += settings_findings(settings) + accent_findings(settings) + topic_findings(issue, settings)
    return findings + image_findings(issue, settings)


def _with_error(findings: list[Finding], exc: IssueError, path: Path) -> list[Finding]:
    """The renderer's error added, unless an error at that line (a merge-field slip) says it better."""
    if exc.line is not None and any(f.level == "error" and f.line == exc.line for f in findings):
        return findings
    return [*findings, Finding(exc.file or str(path), exc.line, "error", exc.message)]


def columns_of(settings: Settings, subscribers: Path | None) -> tuple[str, ...]:
    """The merge names of the list's columns (its header only), for a check's "did you mean"."""
    return list_columns(subscribers or settings.path(settings.newsletter.subscribers))


def slip_findings(issue: Issue, columns: Sequence[str]) -> list[Finding]:
    """Merge-field slips (slips.py) in every text that is filled per reader, with suggestions from
    the list's ``columns`` where they are known."""
    texts = [(s.text, s.line) for s in markdown_sources(issue)]
    texts += [(issue.subject, issue.line_of("subject")), (issue.preheader, issue.line_of("preheader"))]
    return [Finding(str(issue.path), s.line, s.level, s.message) for s in find_slips(texts, columns)]


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)
