"""An issue as a web page, and the archive's index: rendered from the parsed issue with the
site's own templates (templates/site/), not from the email's HTML, so the page is plain,
responsive HTML without the email's table layout.

Merge fields take the public reader's values (``[publish.reader]``); a recipient's address,
name or unsubscribe link never reaches a page, because no recipient is ever looked at.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, TemplateError
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from ..compose import markup
from ..compose.bidi import direction
from ..compose.i18n import catalogue, template_environment
from ..compose.images import ImageResolver, MediaImage, image_blocks
from ..compose.issue import Issue
from ..compose.merge import ESCAPERS, MergeFields, html_contexts
from ..compose.online import event_links, issue_path, issue_url, site_url, version_of
from ..compose.palette import palette_for
from ..compose.render import contact_href, date_label, event_when, template_dirs
from ..config import Settings
from ..errors import IssueError
from .archive import SentIssue

__all__ = ["Article", "PageRenderer", "Version", "og_image", "public_text"]

_MD = MarkdownIt("commonmark")


@dataclass(frozen=True)
class Article:
    """An issue's content as HTML, merge fields filled, for the page and the feed."""

    html: str
    subject: str
    preheader: str


def public_text(text: str, issue: Issue, settings: Settings, line: int) -> str:
    """Front-matter text (a subject, a preheader) as the public reader sees it."""
    fields = MergeFields()
    source = fields.substitute(text, file=issue.path, line=line)
    return fields.render_plain(source, fields.values(dict(settings.publish.reader), ""))


@dataclass(frozen=True)
class Version:
    """One language version of an issue's page: its tag, its folder under the issue's ("" for
    the main language's) and its language's name in itself."""

    tag: str
    folder: str
    name: str


class PageRenderer:
    """Renders the site's pages of one settings; each issue's merge fields filled once; one
    template environment per language (its catalogue installed), made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.language = settings.newsletter.language
        self._dirs = [str(d / "site") for d in template_dirs(settings) if (d / "site").is_dir()]
        self._envs: dict[str, Environment] = {}

    def env(self, language: str = "") -> Environment:
        language = language or self.language
        if language not in self._envs:
            self._envs[language] = template_environment(self._dirs, language)
        return self._envs[language]

    def _render(self, template: str, context: dict[str, Any], language: str = "") -> str:
        try:
            return self.env(language).get_template(template).render(context)
        except TemplateError as exc:
            name = getattr(exc, "filename", None) or f"templates/site/{template}"
            raise IssueError(f"template error: {exc}", file=name, line=getattr(exc, "lineno", None)) from None

    def _common(self, canonical: str, root: str) -> dict[str, Any]:
        news = self.settings.newsletter
        return {
            "lang": self.language,
            "dir": direction(self.language),
            "versions": [],
            "languages": [],
            "newsletter": news,
            "palette": palette_for(self.settings.brand.accent),
            "canonical": canonical,
            "root": root,
            "site_url": site_url(self.settings),
            "subscribe_url": f"{news.base_url.rstrip('/')}/subscribe",
        }

    def article(self, sent: SentIssue, images: ImageResolver, *, absolute: bool, language: str = "") -> Article:
        """The issue's content (``language``: a translation's, else the main one's); ``absolute``:
        every link a full URL (for the feed)."""
        issue, fields = sent.issue, MergeFields()
        language = language or self.language
        version = version_of(self.settings, language)
        base = issue_url(self.settings, issue.key, version) if absolute else ""
        media_root = f"{site_url(self.settings)}/" if absolute else "../../" + ("../" if version else "")
        blocks = _Blocks(fields, issue, images, media_root + "media/")
        context = {
            "subject": fields.substitute(issue.subject, file=issue.path, line=issue.line_of("subject")),
            "intro": blocks.html(issue.intro, issue.intro_line),
            "highlights": [{"html": blocks.inline(h.text, h.line), "anchor": h.anchor} for h in issue.highlights],
            "sections": [
                {
                    "title_html": blocks.inline(s.title, s.line),
                    "anchor": s.anchor,
                    "html": blocks.html(s.body, s.line + 1),
                }
                for s in issue.sections
            ],
            "events": self._events(issue, blocks, language),
            "signoff": blocks.html(issue.signoff, issue.signoff_line) if issue.signoff else "",
            "base": base,
            "date_label": date_label(sent.day(self.settings.newsletter.timezone), language),
        }
        body = self._render("article.html", context, language)
        values = fields.values(dict(self.settings.publish.reader), "")
        subject = public_text(issue.subject, issue, self.settings, issue.line_of("subject"))
        preheader = public_text(issue.preheader, issue, self.settings, issue.line_of("preheader"))
        return Article(_fill(body, fields, values), subject, preheader)

    def _events(self, issue: Issue, blocks: _Blocks, language: str) -> list[dict[str, Any]]:
        contact = catalogue(language).gettext("Contact:")
        links = event_links(issue, self.settings, version_of(self.settings, language), contact)
        return [
            {
                "when": event_when(event, language),
                "title_html": blocks.inline(event.title, event.line),
                "title_text": html.unescape(re.sub(r"<[^>]+>", "", blocks.inline(event.title, event.line))),
                "where": event.where,
                "contact": event.contact,
                "contact_href": contact_href(event.contact),
                "link": event.link,
                "ics": link.ics_url.rpartition("/")[2],
                "google_url": link.google_url,
            }
            for event, link in zip(issue.events, links, strict=True)
        ]

    def issue_page(
        self, sent: SentIssue, article: Article, og_image: str, versions: tuple[Version, ...] = (), current: str = ""
    ) -> str:
        """An issue's page; with ``versions`` (the main one first, then each translation) it links
        every version both ways (hreflang, and x-default to the main one) and names the others
        in their own language; ``current``: the folder of the one this page is."""
        canonical = issue_url(self.settings, sent.key, current)
        context = {
            **self._common(canonical, "../../../" if current else "../../"),
            **self._versions(sent, versions, current),
            "article": Markup(article.html),
            "subject": article.subject,
            "preheader": article.preheader,
            "published": sent.sent.isoformat().replace("+00:00", "Z"),
            "og_image": og_image,
        }
        return self._render("issue.html", context, context["lang"])

    def _versions(self, sent: SentIssue, versions: tuple[Version, ...], current: str) -> dict[str, Any]:
        if len(versions) < 2:
            return {}
        url = functools.partial(issue_url, self.settings, sent.key)
        here = next(v for v in versions if v.folder == current)
        alternates = [{"hreflang": v.tag, "url": url(v.folder)} for v in versions]
        alternates.append({"hreflang": "x-default", "url": url("")})
        up = "../" if current else ""
        others = [
            {"tag": v.tag, "name": v.name, "href": f"{up}{v.folder}/" if v.folder else up}
            for v in versions
            if v is not here
        ]
        return {"lang": here.tag, "dir": direction(here.tag), "versions": alternates, "languages": others}

    def index_page(self, entries: list[tuple[SentIssue, Article]]) -> str:
        items = [
            {
                "href": issue_path(sent.key),
                "date_label": date_label(sent.day(self.settings.newsletter.timezone)),
                "date_iso": sent.day(self.settings.newsletter.timezone).isoformat(),
                "subject": article.subject,
                "preheader": article.preheader,
            }
            for sent, article in entries
        ]
        return self._render("index.html", {**self._common(f"{site_url(self.settings)}/", ""), "items": items})


def og_image(issue: Issue, images: ImageResolver) -> str:
    """The issue's first image as an absolute http(s) URL, for link previews; "" if none."""
    for src, line in image_blocks(issue):
        served = images.served(src, line)
        if served is not None:
            return images.address(served)
        if re.match(r"^https?://", src):
            return src
    return ""


def _fill(page: str, fields: MergeFields, values: list[str]) -> str:
    """Each placeholder replaced by its public value, escaped for where it stands."""
    parts: list[str] = []
    last = 0
    for match, context in html_contexts(page, fields.pattern):
        parts += [page[last : match.start()], ESCAPERS[context](values[int(match.group(1))])]
        last = match.end()
    return "".join(parts) + page[last:]


class _Blocks:
    """Markdown of one issue to page HTML: paragraphs as they are, a lone button link as a
    button, a lone image as a figure with its caption."""

    def __init__(self, fields: MergeFields, issue: Issue, images: ImageResolver, media: str) -> None:
        self.fields, self.file, self.images, self.media = fields, issue.path, images, media

    def _address(self, image: MediaImage) -> str:
        return self.media + image.name

    def inline(self, source: str, line: int) -> Markup:
        return Markup(markup.render_inline(self.fields.substitute(source, file=self.file, line=line)))

    def html(self, source: str, first_line: int) -> Markup:
        tokens = _MD.parse(self.fields.substitute(source, file=self.file, line=first_line))
        out: list[str] = []
        pending: list[Token] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.type == "paragraph_open" and token.level == 0 and i + 1 < len(tokens):
                special = self._special(tokens[i + 1], first_line + (token.map[0] if token.map else 0))
                if special is not None:
                    out += [self._render(pending, first_line), special]
                    pending.clear()
                    i += 3
                    continue
            pending.append(token)
            i += 1
        out.append(self._render(pending, first_line))
        return Markup("".join(out))

    def _render(self, tokens: list[Token], line: int) -> str:
        """Markdown as it is; an image inside a paragraph points at the archive's copy."""
        return self.images.rewrite(_MD.renderer.render(tokens, _MD.options, {}), line, self._address)

    def _special(self, inline: Token, line: int) -> str | None:
        button = markup.as_button(inline)
        if button is not None:
            return f'<p><a class="button" href="{_attr(button.href)}">{Markup.escape(button.label)}</a></p>\n'
        image = markup.as_image(inline, line)
        if image is None:
            return None
        served = self.images.served(image.src, line)
        src = image.src if served is None else self._address(served)
        size = "" if served is None else f' width="{served.width}" height="{served.height}"'
        caption = f"<figcaption>{Markup.escape(image.caption)}</figcaption>" if image.caption else ""
        return f'<figure><img src="{_attr(src)}" alt="{_attr(image.alt)}"{size}>{caption}</figure>\n'


def _attr(value: str) -> str:
    return str(Markup.escape(value))
