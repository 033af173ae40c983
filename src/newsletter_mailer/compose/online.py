"""The web archive's addresses as an email links to them and ``publish`` writes them: one place
for the site's URL scheme (issue pages, each diary event's calendar file, media), the diary's
times, and the Google Calendar link, so the email and the site can never disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import unicodedata
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from ..config import Settings
from . import markup
from .issue import Event, Issue
from .merge import MergeFields

__all__ = [
    "DEFAULT_EVENT_HOURS",
    "EMAIL_CONTENT_WIDTH",
    "EventLinks",
    "EventTimes",
    "event_links",
    "event_times",
    "event_title",
    "event_uids",
    "google_calendar_url",
    "issue_path",
    "issue_url",
    "media_url",
    "online",
    "site_url",
    "version_of",
]

EMAIL_CONTENT_WIDTH = 552  # px: the email's 600 px column less 24 px of padding on each side
DEFAULT_EVENT_HOURS = 1  # an event given only a start time lasts an hour in calendars


def online(settings: Settings) -> bool:
    """The newsletter has a web archive: emails link to it (``[publish] enabled``)."""
    return settings.publish.enabled


def site_url(settings: Settings) -> str:
    """The site's root, without a trailing slash."""
    return settings.publish.base_url.rstrip("/")


def issue_path(key: str, version: str = "") -> str:
    """An issue's folder in the site, relative to its root: ``issues/<stem>/``, and a
    translation's inside it, named by its tag: ``issues/<stem>/fr/``."""
    inner = f"{quote(version.lower(), safe='')}/" if version else ""
    return f"issues/{quote(key, safe='')}/{inner}"


def issue_url(settings: Settings, key: str, version: str = "") -> str:
    """The issue's page (``version``: a translation's): the same for every reader (no token,
    no address)."""
    return f"{site_url(settings)}/{issue_path(key, version)}"


def version_of(settings: Settings, language: str) -> str:
    """The archive's folder for an issue rendered in ``language``: "" for the main language, else
    the translation's tag."""
    return "" if language.lower() == settings.newsletter.language.lower() else language


def media_url(settings: Settings, name: str) -> str:
    return f"{site_url(settings)}/media/{quote(name, safe='.')}"


@dataclass(frozen=True)
class EventTimes:
    """When an event is, in the newsletter's zone (``None``: floating local times), or all day."""

    start: dt.datetime | dt.date
    end: dt.datetime | dt.date
    all_day: bool


def _clock(text: str) -> dt.time:
    hours, minutes = re.split(r"[:.]", text.strip())
    return dt.time(int(hours), int(minutes))


def event_times(event: Event, timezone: str) -> EventTimes:
    """An event's span: all day without a time, an hour from a lone start time; an end before the
    start is on the next day (22:00-01:00)."""
    if not event.time:
        return EventTimes(event.date, event.date + dt.timedelta(days=1), True)
    zone = zoneinfo.ZoneInfo(timezone) if timezone else None
    first, _, last = event.time.replace("–", "-").partition("-")
    start = dt.datetime.combine(event.date, _clock(first), zone)
    if last.strip():
        end = dt.datetime.combine(event.date, _clock(last), zone)
        if end <= start:
            end += dt.timedelta(days=1)
    else:
        end = start + dt.timedelta(hours=DEFAULT_EVENT_HOURS)
    return EventTimes(start, end, False)


def event_title(event: Event, reader: dict[str, str], file: Path, fields: MergeFields | None = None) -> str:
    """The event's title as plain text, merge fields filled with the public reader's values
    (``fields``: one collection for the issue, which saves compiling the same ones again)."""
    if "{{" not in event.title:  # the usual case: no merge field, no sandbox to start
        return html.unescape(re.sub(r"<[^>]+>", "", markup.render_inline(event.title)))
    fields = fields or MergeFields()
    source = fields.substitute(event.title, file=file, line=event.line)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup.render_inline(source)))
    return fields.render_plain(text, fields.values(reader, ""))


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def event_uids(issue: Issue) -> Iterator[tuple[Event, str]]:
    """Each event with its calendar UID's name part, from the event's day and title (not the
    issue): the same event announced in two issues is one event in a reader's calendar, and
    re-publishing never changes it. Two same-titled events on one day are told apart by order."""
    seen: dict[str, int] = {}
    for event in issue.events:
        base = f"{event.date.isoformat()}\0{_slug(event.title) or 'event'}"
        n = seen[base] = seen.get(base, 0) + 1
        yield event, hashlib.sha256(f"{base}\0{n}".encode()).hexdigest()[:20]


def _google_stamp(value: dt.datetime | dt.date) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%dT%H%M%S")
    return value.strftime("%Y%m%d")


def google_calendar_url(event: Event, title: str, timezone: str, contact: str = "Contact:") -> str:
    """Google Calendar's "add event" page for the event (its documented TEMPLATE link);
    ``contact``: the word before the contact, in the issue's language."""
    times = event_times(event, timezone)
    query: dict[str, str] = {
        "action": "TEMPLATE",
        "text": title,
        "dates": f"{_google_stamp(times.start)}/{_google_stamp(times.end)}",
    }
    if event.where:
        query["location"] = event.where
    details = "\n".join(part for part in (event.link, f"{contact} {event.contact}" if event.contact else "") if part)
    if details:
        query["details"] = details
    if timezone and not times.all_day:
        query["ctz"] = timezone
    return "https://calendar.google.com/calendar/render?" + urlencode(query, quote_via=quote)


@dataclass(frozen=True)
class EventLinks:
    ics_url: str
    google_url: str


def event_links(issue: Issue, settings: Settings, version: str = "", contact: str = "Contact:") -> list[EventLinks]:
    """The "Add to calendar" links of each of the issue's events, in the issue's order
    (``version``: a translation's own calendar files; ``contact``: its word for "Contact:")."""
    reader, fields = dict(settings.publish.reader), MergeFields()
    zone = settings.newsletter.timezone
    base = issue_url(settings, issue.key, version)
    return [
        EventLinks(
            f"{base}events/{uid}.ics",
            google_calendar_url(event, event_title(event, reader, issue.path, fields), zone, contact),
        )
        for event, uid in event_uids(issue)
    ]
