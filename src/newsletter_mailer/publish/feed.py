"""The archive's Atom feed (RFC 4287): the last issues with their full content, dated by the
journal's first send, so the same archive always gives the same bytes."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from ..compose.online import issue_url, site_url
from ..config import Settings
from .archive import SentIssue
from .page import Article

__all__ = ["FEED_ENTRIES", "atom_feed"]

FEED_ENTRIES = 20
ATOM = "http://www.w3.org/2005/Atom"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # an archive with nothing sent yet


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def atom_feed(settings: Settings, entries: list[tuple[SentIssue, Article]]) -> bytes:
    """``entries`` newest first; only the first FEED_ENTRIES are in the feed."""
    site = site_url(settings)
    news = settings.newsletter
    # The namespace as a plain attribute: ElementTree's prefix registry is a module global.
    feed = ET.Element("feed", {"xmlns": ATOM, "{http://www.w3.org/XML/1998/namespace}lang": news.language})
    _add(feed, "id", f"{site}/")
    _add(feed, "title", news.name)
    _add(feed, "updated", _stamp(entries[0][0].sent if entries else _EPOCH))
    _add(feed, "link", rel="self", type="application/atom+xml", href=f"{site}/feed.xml")
    _add(feed, "link", rel="alternate", type="text/html", href=f"{site}/")
    author = _add(feed, "author")
    _add(author, "name", news.name)
    _add(feed, "generator", "newsletter-mailer")
    for sent, article in entries[:FEED_ENTRIES]:
        entry = _add(feed, "entry")
        url = issue_url(settings, sent.key)
        _add(entry, "id", url)
        _add(entry, "title", article.subject)
        _add(entry, "link", rel="alternate", type="text/html", href=url)
        _add(entry, "published", _stamp(sent.sent))
        _add(entry, "updated", _stamp(sent.sent))
        if article.preheader:
            _add(entry, "summary", article.preheader)
        _add(entry, "content", article.html, type="html")
    ET.indent(feed)
    data: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
