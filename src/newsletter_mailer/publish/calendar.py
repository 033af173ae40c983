"""The diary as iCalendar (RFC 5545) with the icalendar library: one file per event, which an
email's "Add to calendar" link opens, and ``diary.ics``, every event of every published issue,
which a calendar app can subscribe to.

Times keep the editor's local clock: with ``[newsletter] timezone`` they carry its TZID and
the VTIMEZONE that defines it; without, they are floating (the same clock time wherever the
reader is). UIDs come from compose/online.py, so the email's links and the site agree, and
DTSTAMP is the issue's first send: re-publishing writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools

import icalendar

from ..compose.i18n import catalogue
from ..compose.merge import MergeFields
from ..compose.online import event_times, event_title, event_uids, issue_url, version_of
from ..config import Settings
from .archive import SentIssue

__all__ = ["diary_calendar", "issue_event_files"]


def _calendar(settings: Settings, name: str) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", f"-//newsletter-mailer//{settings.newsletter.name}//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    if settings.newsletter.timezone:
        calendar.add("x-wr-timezone", settings.newsletter.timezone)
    return calendar


def _events(sent: SentIssue, settings: Settings, language: str = "") -> list[tuple[str, icalendar.Event]]:
    """Each of the issue's events as a VEVENT, with its UID's name part; its words in
    ``language`` (a translation's), else the newsletter's."""
    language = language or settings.newsletter.language
    _ = catalogue(language).gettext
    page = issue_url(settings, sent.key, version_of(settings, language))
    reader, fields = dict(settings.publish.reader), MergeFields()
    zone = settings.newsletter.timezone
    found = []
    for event, uid in event_uids(sent.issue):
        times = event_times(event, zone)
        vevent = icalendar.Event()
        vevent.add("uid", f"{uid}@{settings.newsletter.from_domain}")
        vevent.add("dtstamp", sent.sent)
        vevent.add("dtstart", times.start)
        vevent.add("dtend", times.end)
        vevent.add("summary", event_title(event, reader, sent.issue.path, fields))
        if event.where:
            vevent.add("location", event.where)
        details = [_("Contact:") + f" {event.contact}" if event.contact else "", event.link]
        details.append(_("From %(name)s:") % {"name": settings.newsletter.name} + f" {page}")
        vevent.add("description", "\n".join(part for part in details if part))
        vevent.add("url", event.link or page)
        vevent.add("transp", "TRANSPARENT" if times.all_day else "OPAQUE")
        found.append((uid, vevent))
    return found


@functools.lru_cache(maxsize=64)
def _vtimezone(zone: str, first: int, last: int) -> icalendar.Timezone:
    """The VTIMEZONE of ``zone`` from zoneinfo for the years ``first`` to ``last`` (not
    icalendar's default 1970-2038: smaller, and right for an event after 2037); made once."""
    return icalendar.Timezone.from_tzid(zone, first_date=dt.date(first - 1, 1, 1), last_date=dt.date(last + 2, 1, 1))


def _finish(calendar: icalendar.Calendar, settings: Settings) -> bytes:
    years = [event.start.year for event in calendar.events]
    if settings.newsletter.timezone and years:
        calendar.subcomponents.insert(0, _vtimezone(settings.newsletter.timezone, min(years), max(years)))
    data: bytes = calendar.to_ical()
    return data


def issue_event_files(sent: SentIssue, settings: Settings, language: str = "") -> dict[str, bytes]:
    """``<uid>.ics`` for each event of the issue (or of a translation, in ``language``): one
    event each, to add with a click."""
    files = {}
    for uid, vevent in _events(sent, settings, language):
        calendar = _calendar(settings, settings.newsletter.name)
        calendar.add_component(vevent)
        files[f"{uid}.ics"] = _finish(calendar, settings)
    return files


def diary_calendar(issues: tuple[SentIssue, ...], settings: Settings) -> bytes:
    """Every event of every published issue, once (``issues`` newest first: an event announced
    again keeps its UID and takes its newest details), in the order of their start."""
    chosen: dict[str, icalendar.Event] = {}
    for sent in issues:
        for uid, vevent in _events(sent, settings):
            chosen.setdefault(uid, vevent)
    calendar = _calendar(settings, f"{settings.newsletter.name}: diary")
    for uid in sorted(chosen, key=lambda u: (str(chosen[u]["dtstart"].to_ical()), u)):
        calendar.add_component(chosen[uid])
    return _finish(calendar, settings)
