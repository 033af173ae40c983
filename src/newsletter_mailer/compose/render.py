"""Render an issue once: Jinja2 fills the MJML template, MRML turns it into HTML, premailer
inlines our CSS; the plain-text part is written from the same source.

The result still holds merge-field placeholders; ``envelope`` fills them per recipient.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mjml
import premailer
from jinja2 import TemplateError
from markupsafe import Markup

from ..config import Settings
from ..errors import IssueError
from ..workspace import shipped
from . import markup
from .bidi import FSI, LRI, PDI, RLM, direction
from .i18n import catalogue, template_environment
from .i18n import date_label as _date_label
from .i18n import event_when as _event_when
from .images import ImageResolver
from .issue import Event, Issue
from .merge import MergeFields
from .online import EventLinks, event_links, issue_url, online, version_of
from .palette import palette_for
from .plaintext import TextWriter, underline, view_online, wrap

TEMPLATE = "newsletter.mjml"
COLUMN_WIDTH = 552  # the 600 px card less 24 px padding each side: the widest an image is drawn
GMAIL_CLIP_BYTES = 102 * 1024
SIZE_WARNING_BYTES = 90 * 1024
# Inbox previews show the first 90-200 characters of the body. After the preheader come
# invisible characters (combining grapheme joiner, zero-width non-joiner, no-break space), so
# the preview does not run on into the header and the subject.
PREHEADER_PADDING = Markup("&#847;&zwnj;&nbsp;" * 120)


@dataclass(frozen=True)
class RenderedIssue:
    """One issue, rendered once, with placeholders where per-recipient values go."""

    issue: Issue
    subject: str
    html: str
    text: str
    fields: MergeFields
    language: str = "en"  # the language tag its fixed words and dates are in

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def template_dirs(settings: Settings) -> list[Path]:
    """The workspace's templates/ first (an override), then the ones the package ships."""
    dirs = [settings.workspace / "templates", shipped("templates")]
    return [d for d in dirs if d.is_dir()]


def date_label(day: dt.date, language: str = "en") -> str:
    return _date_label(day, language)


def event_when(event: Event, language: str = "en") -> str:
    return _event_when(event.date, event.time, language)


def contact_href(contact: str) -> str:
    if re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", contact):
        return f"mailto:{contact}"
    if re.match(r"^https?://", contact):
        return contact
    digits = re.sub(r"[^\d+]", "", contact)
    return f"tel:{digits}" if len(digits) >= 6 else ""


_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_PIXEL_WIDTH = re.compile(r"""\swidth\s*=\s*("\d+"|'\d+'|\d+(?=[\s/>]))""", re.IGNORECASE)


def sized_images(html: str) -> str:
    """Every ``<img>`` with a pixel ``width``: Outlook for Windows draws an image without one at
    the file's own size. One given in the HTML is kept; the others get the column's width as an
    upper bound for Outlook, and ``width:auto`` for the clients that read CSS (check warns of them)."""

    def size(match: re.Match[str]) -> str:
        tag = match.group(0)
        if _PIXEL_WIDTH.search(tag):
            return tag
        tag = re.sub(r"""\swidth\s*=\s*(["'][^"']*["']|\S+)""", "", tag, flags=re.IGNORECASE)  # "100%"
        end = -2 if tag.endswith("/>") else -1
        # width:auto keeps the file's own size (up to max-width: 100%) where CSS is read
        style = "" if re.search(r"\sstyle\s*=", tag, re.IGNORECASE) else ' style="width:auto"'
        return f'{tag[:end].rstrip()} width="{COLUMN_WIDTH}"{style}{tag[end:]}'

    return _IMG.sub(size, html)


def _block_context(block: markup.Block, images: ImageResolver, line: int) -> dict[str, Any]:
    if isinstance(block, markup.HtmlBlock):  # an image inside a paragraph: the archive's copy too
        return {"kind": "html", "html": Markup(sized_images(images.rewrite(block.html, line, images.address)))}
    if isinstance(block, markup.ButtonBlock):
        return {"kind": "button", "href": block.href, "label": block.label}
    src, width, height = images.url(block.src, block.line)  # the archive's copy of a local image, its size
    image = {"kind": "image", "src": src, "alt": block.alt, "caption": block.caption}
    return image | {"width": width or COLUMN_WIDTH, "height": height}


def _inline_text(source: str) -> str:
    """Inline Markdown as plain text, unescaped: the template escapes it once where it lands."""
    return Markup(markup.render_inline(source)).striptags()


def build_context(issue: Issue, settings: Settings, fields: MergeFields, language: str | None = None) -> dict[str, Any]:
    """What the MJML template sees, with merge fields already turned into placeholders."""
    file = issue.path
    images = ImageResolver(issue, settings)
    language = language or settings.newsletter.language

    def blocks(source: str, line: int) -> list[dict[str, Any]]:
        substituted = fields.substitute(source, file=file, line=line)
        return [_block_context(b, images, line) for b in markup.to_blocks(substituted, line)]

    def inline(source: str, line: int) -> Markup:
        return Markup(sized_images(markup.render_inline(fields.substitute(source, file=file, line=line))))

    events = []
    version = version_of(settings, language)  # a translation links to its own page in the archive
    contact = catalogue(language).gettext("Contact:")
    calendar = (
        event_links(issue, settings, version, contact) if online(settings) else [EventLinks("", "")] * len(issue.events)
    )
    for event, links in zip(issue.events, calendar, strict=True):
        events.append(
            {
                "when": event_when(event, language),
                "title_html": inline(event.title, event.line),
                "title_text": _inline_text(event.title),
                "where": event.where,
                "contact": event.contact,
                "contact_href": contact_href(event.contact),
                "link": event.link,
                "ics_url": links.ics_url,
                "google_url": links.google_url,
            }
        )
    return {
        "newsletter": settings.newsletter,
        "brand": settings.brand,
        "palette": palette_for(settings.brand.accent, settings.brand.text_accent),
        "direction": direction(language),
        "language": language,
        "column_width": COLUMN_WIDTH,
        "preheader_padding": PREHEADER_PADDING,
        "issue": {
            "subject": fields.substitute(issue.subject, file=file, line=issue.line_of("subject")),
            "preheader": fields.substitute(issue.preheader, file=file, line=issue.line_of("preheader")),
            "date_label": date_label(issue.date, language) if issue.date else "",
        },
        "intro": blocks(issue.intro, issue.intro_line),
        "highlights": [{"html": inline(h.text, h.line), "anchor": h.anchor} for h in issue.highlights],
        "sections": [
            {"title_html": inline(s.title, s.line), "anchor": s.anchor, "blocks": blocks(s.body, s.line + 1)}
            for s in issue.sections
        ],
        "events": events,
        "signoff": blocks(issue.signoff, issue.signoff_line) if issue.signoff else [],
        "unsubscribe_url": fields.unsubscribe_url,
        "preferences_url": fields.preferences_url if settings.preferences.enabled else "",
        "view_online_url": issue_url(settings, issue.key, version) if online(settings) else "",
    }


_STYLE_TAG = re.compile(r"<style([^>]*)>(.*?)</style>", re.DOTALL)


def _mark_style_blocks(html: str) -> str:
    """Let premailer inline only our own CSS; MJML's media queries and resets must stay in <head>."""

    def mark(match: re.Match[str]) -> str:
        attrs, css = match.group(1), match.group(2)
        if "nlm-inline" in css:
            return match.group(0)
        return f'<style{attrs} data-premailer="ignore">{css}</style>'

    return _STYLE_TAG.sub(mark, html)


def inline_css(html: str) -> str:
    """premailer with the settings an MJML email needs; no network, doctype restored."""
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    inliner = premailer.Premailer(
        _mark_style_blocks(html),
        strip_important=False,  # the desktop-column media queries depend on !important
        keep_style_tags=False,
        allow_network=False,
        allow_loading_external_files=False,
        disable_validation=True,
        remove_classes=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_leftover_css=True,
        # premailer copies CSS widths into attributes, turning MJML's width="552" on an image
        # into width="100%", which Outlook for Windows reads against the image file's own size.
        disable_basic_attributes=["width", "height"],
    )
    out: str = inliner.transform(pretty_print=False)
    out = out.replace(' data-premailer="ignore"', "")
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!doctype html>\n" + out
    return out


def render_html(issue: Issue, settings: Settings, fields: MergeFields, language: str | None = None) -> str:
    language = language or settings.newsletter.language
    env = template_environment([str(d) for d in template_dirs(settings)], language, escaped=("mjml", "html"))
    try:
        source = env.get_template(TEMPLATE).render(build_context(issue, settings, fields, language))
    except TemplateError as exc:
        name = getattr(exc, "filename", None) or TEMPLATE
        raise IssueError(f"template error: {exc}", file=name, line=getattr(exc, "lineno", None)) from None
    try:
        html = mjml.mjml2html(source, fonts={}, disable_comments=False)
    except ValueError as exc:  # MRML reports a position in the rendered template source
        blamed = _raw_html_breaking_mjml(issue)
        if blamed is not None:
            raise blamed from None
        where = next((d / TEMPLATE for d in template_dirs(settings) if (d / TEMPLATE).is_file()), TEMPLATE)
        raise IssueError(f"the MJML template is not valid MJML: {exc}", file=where) from None
    return inline_css(html)


_PROBE = "<mjml><mj-body><mj-section><mj-column><mj-text>{}</mj-text></mj-column></mj-section></mj-body></mjml>"


def _raw_html(source: str, first_line: int) -> Iterator[tuple[int, str]]:
    """Each piece of raw HTML written in Markdown, with its file line."""
    for token in markup.parse(source):
        line = first_line + (token.map[0] if token.map else 0)
        if token.type == "html_block":
            yield line, token.content
        for child in token.children or []:
            if child.type == "html_inline":
                yield line, child.content


def _raw_html_breaking_mjml(issue: Issue) -> IssueError | None:
    """When MJML fails, the raw HTML of the issue that fails on its own is to blame, not the
    template: tried piece by piece, only on this error path."""
    sources = [(issue.intro, issue.intro_line), *((s.body, s.line + 1) for s in issue.sections)]
    if issue.signoff:
        sources.append((issue.signoff, issue.signoff_line))
    for text, first_line in sources:
        for line, html in _raw_html(text, first_line):
            try:
                mjml.mjml2html(_PROBE.format(html), fonts={})
            except ValueError as exc:
                reason = re.sub(r" at position \S+", "", str(exc))  # a position in the probe, not the file
                return IssueError(
                    f"raw HTML {html.strip()[:60]!r} breaks the email's layout (MJML: {reason}); "
                    "remove it or close its tags",
                    file=issue.path,
                    line=line,
                )
    return None


def render_text(issue: Issue, settings: Settings, fields: MergeFields, language: str | None = None) -> str:
    file = issue.path
    language = language or settings.newsletter.language
    _ = catalogue(language).gettext
    writer = TextWriter(gettext=_)
    news = settings.newsletter
    iso = _isolator(language)
    subject = fields.substitute(issue.subject, file=file, line=issue.line_of("subject"))
    out: list[str] = [news.name, ""]
    if online(settings):
        out += [view_online(issue_url(settings, issue.key, version_of(settings, language)), _), ""]
    out.append(underline(subject, "="))
    if issue.date:
        out.append(date_label(issue.date, language))
    out.append("")
    if issue.intro.strip():
        out += [writer.blocks(fields.substitute(issue.intro, file=file, line=issue.intro_line)), ""]
    if issue.highlights:
        out += [_("In this issue").upper(), ""]
        out += [
            wrap(
                f"- {writer.inline(markup.parse_inline(fields.substitute(h.text, file=file, line=h.line)))}",
                hanging="  ",
            )
            for h in issue.highlights
        ]
        refs = writer.take_references()
        out += ["", refs, ""] if refs else [""]
    for section in issue.sections:
        body = writer.blocks(fields.substitute(section.body, file=file, line=section.line + 1))
        out += ["", underline(section.title.upper(), "-"), "", body, ""]
    if issue.events:
        out += ["", underline(_("Diary").upper(), "-"), ""]
        calendar = (
            event_links(issue, settings, version_of(settings, language), _("Contact:")) if online(settings) else []
        )
        for n, event in enumerate(issue.events):
            title = writer.inline(markup.parse_inline(fields.substitute(event.title, file=file, line=event.line)))
            lines = [event_when(event, language), wrap(title, "  ", "  ")]
            if event.where:
                lines.append(wrap(_("Where:") + f" {iso(event.where)}", "  ", "    "))
            if event.contact:
                lines.append(wrap(_("Contact:") + f" {iso(event.contact, LRI)}", "  ", "    "))
            if event.link:
                lines.append("  " + _("Details:") + f" {event.link}")
            if calendar:
                lines.append("  " + _("Add to calendar:") + f" {calendar[n].ics_url}")
            out += ["\n".join(lines), ""]
        refs = writer.take_references()
        if refs:
            out += [refs, ""]
    if issue.signoff:
        signoff = fields.substitute(issue.signoff, file=file, line=issue.signoff_line)
        out += ["", writer.blocks(signoff), ""]
    footer = ["-- ", news.name]  # the signature delimiter is dash, dash, space (RFC 3676)
    if news.postal_address:
        footer.append(iso(news.postal_address))
    footer += [
        _("You are receiving this because you subscribed to %(name)s.") % {"name": iso(news.name)},
        _("Unsubscribe:") + f" {fields.unsubscribe_url}",
    ]
    if settings.preferences.enabled:
        footer.append(_("Choose what you receive, or pause:") + f" {fields.preferences_url}")
    out += ["", "\n".join(footer)]
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    lines = [line if line == "-- " else line.rstrip() for line in text.split("\n")]
    if direction(language) == "rtl":  # each line starts right to left, whatever its first letter
        lines = [f"{RLM}{line}" if line and line != "-- " else line for line in lines]
    return "\n".join(lines)


def _isolator(language: str) -> Callable[..., str]:
    """In a right-to-left text part, a value between FIRST STRONG ISOLATE (or LEFT-TO-RIGHT ISOLATE
    for a contact) and POP DIRECTIONAL ISOLATE, so "01234 567890" or "12 Mill Lane" keep their
    order; a left-to-right text part is as it always was."""
    if direction(language) != "rtl":
        return lambda value, opening=FSI: value
    return lambda value, opening=FSI: f"{opening}{value}{PDI}"


def render_issue(issue: Issue, settings: Settings, language: str | None = None) -> RenderedIssue:
    """Render an issue once, for every recipient (of one language: the setting's by default)."""
    fields = MergeFields()
    html = render_html(issue, settings, fields, language)
    text = render_text(issue, settings, fields, language)
    subject = fields.substitute(issue.subject, file=issue.path, line=issue.line_of("subject"))
    language = language or settings.newsletter.language
    return RenderedIssue(issue=issue, subject=subject, html=html, text=text, fields=fields, language=language)
