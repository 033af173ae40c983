"""publish/calendar.py and compose/online.py's event links: the .ics files read back with the
icalendar library (RFC 5545 structure, local times in the newsletter's zone, a round trip),
UIDs stable across runs and edits, one diary for every issue, Google Calendar links."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import icalendar
import pytest

from conftest import REPO, write_issue
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.online import event_links, event_times, event_uids
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.publish.archive import Archive, SentIssue
from newsletter_mailer.publish.calendar import diary_calendar, issue_event_files
from newsletter_mailer.publish.site import build_site

LARGE = REPO / "tests" / "fixtures" / "large-issue.md"
SENT = dt.datetime(2027, 2, 25, 8, 0, tzinfo=dt.UTC).timestamp()
LONDON = zoneinfo.ZoneInfo("Europe/London")


def settings_in(tmp_path: Path, timezone: str = "Europe/London") -> Settings:
    zone = f'timezone = "{timezone}"\n' if timezone else ""
    (tmp_path / "newsletter.toml").write_text(
        f'[newsletter]\nname = "Eastfield"\nfrom = "news@eastfield.example"\n{zone}'
        '[publish]\nbase_url = "https://eastfield.example/news"\n'
    )
    return load_settings(workspace=tmp_path, env={})


def parse(data: bytes) -> icalendar.Calendar:
    """The file as a calendar app reads it, after checking RFC 5545's framing: CRLF line ends,
    no line over 75 octets, one VCALENDAR with PRODID and VERSION 2.0, and every VEVENT with
    UID, DTSTAMP and DTSTART."""
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    for event in calendar.walk("VEVENT"):
        assert event["UID"] and event["DTSTAMP"] and event["DTSTART"]
    assert calendar.to_ical() == data  # a round trip gives the same bytes
    return calendar


def test_each_event_of_the_large_issue_is_a_valid_calendar_file_in_local_time(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    sent = SentIssue(read_issue(LARGE), SENT)
    files = issue_event_files(sent, settings)
    uids = list(event_uids(sent.issue))
    assert sorted(files) == sorted(f"{uid}.ics" for _, uid in uids) and len(files) == 10
    for event, uid in uids:
        calendar = parse(files[f"{uid}.ics"])
        (vevent,) = calendar.walk("VEVENT")
        assert vevent["UID"] == f"{uid}@eastfield.example"
        assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]
        start = vevent.decoded("DTSTART")
        assert start.tzinfo is not None and start.tzinfo.key == "Europe/London"
        assert start.strftime("%H:%M") == event.time.split("-")[0]  # the editor's clock, kept
        assert vevent.decoded("DTSTAMP") == dt.datetime.fromtimestamp(SENT, dt.UTC)
    bird = next(event for event in sent.issue.events if event.title == "Bird count")
    times = event_times(bird, "Europe/London")
    assert times.start == dt.datetime(2027, 3, 22, 7, 30, tzinfo=LONDON)
    assert times.end == dt.datetime(2027, 3, 22, 9, 30, tzinfo=LONDON)
    assert isinstance(times.start, dt.datetime)
    assert times.start.utcoffset() == dt.timedelta(0)  # GMT: the clocks change on 28 March 2027


def test_all_day_open_ended_and_overnight_events(tmp_path: Path) -> None:
    issue = write_issue(
        tmp_path,
        "subject: S\nevents:\n"
        "  - {date: 2027-06-05, title: Fair day}\n"
        "  - {date: 2027-06-06, time: '10:00', title: Walk}\n"
        "  - {date: 2027-06-07, time: '22:00-01:30', title: Star party}\n",
    )
    (tmp_path / "floating").mkdir()
    settings = settings_in(tmp_path / "floating", timezone="")
    sent = SentIssue(read_issue(issue), SENT)
    calendar = parse(diary_calendar((sent,), settings))
    assert calendar.walk("VTIMEZONE") == []  # no zone set: floating local times
    fair, walk, stars = calendar.walk("VEVENT")
    assert fair.decoded("DTSTART") == dt.date(2027, 6, 5) and fair.decoded("DTEND") == dt.date(2027, 6, 6)
    assert fair["TRANSP"] == "TRANSPARENT"
    assert walk.decoded("DTSTART") == dt.datetime(2027, 6, 6, 10, 0)  # naive: floating
    assert walk.decoded("DTEND") == dt.datetime(2027, 6, 6, 11, 0)  # an hour when no end is given
    assert stars.decoded("DTEND") == dt.datetime(2027, 6, 8, 1, 30)  # ends after midnight


def test_uids_are_stable_across_runs_and_edits_and_shared_by_issues(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    first = write_issue(
        tmp_path,
        "subject: March\nevents:\n  - {date: 2027-03-31, time: '19:30', title: AGM, where: Hall}\n"
        "  - {date: 2027-03-20, title: Litter pick}\n  - {date: 2027-03-20, title: Litter pick}\n",
        name="march.md",
    )
    second = write_issue(
        tmp_path,
        "subject: April\nevents:\n  - {date: 2027-03-31, time: '19:00-21:00', title: AGM, where: Main hall}\n",
        name="april.md",
    )
    march, april = SentIssue(read_issue(first), SENT), SentIssue(read_issue(second), SENT + 86400 * 30)
    march_uids = [uid for _, uid in event_uids(march.issue)]
    assert len(set(march_uids)) == 3  # two litter picks on one day are two events
    assert march_uids == [uid for _, uid in event_uids(read_issue(first))]  # another run, the same
    assert [uid for _, uid in event_uids(april.issue)] == march_uids[2:]  # the AGM again: the same UID
    calendar = parse(diary_calendar((april, march), settings))
    events = calendar.walk("VEVENT")
    assert len(events) == 3  # the AGM once, with the newest issue's details
    agm = next(event for event in events if event["SUMMARY"] == "AGM")
    assert agm["LOCATION"] == "Main hall" and agm.decoded("DTSTART").hour == 19
    starts = [event.decoded("DTSTART") for event in events]
    assert [str(s) for s in starts] == sorted(str(s) for s in starts)


def test_google_calendar_links_carry_the_event(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    issue = read_issue(LARGE)
    links = event_links(issue, settings)
    committee = parse_qs(urlsplit(links[0].google_url).query)
    assert urlsplit(links[0].google_url).netloc == "calendar.google.com"
    assert committee["action"] == ["TEMPLATE"] and committee["text"] == ["Committee meeting"]
    assert committee["dates"] == ["20270304T183000/20270304T200000"]
    assert committee["ctz"] == ["Europe/London"]
    assert committee["location"] == ["Eastfield Community Centre, room 2"]
    assert "https://example.org/committee" in committee["details"][0]
    assert all(
        re.fullmatch(r"https://eastfield\.example/news/issues/large-issue/events/\w{20}\.ics", x.ics_url) for x in links
    )


def test_every_event_in_the_email_has_both_calendar_links_and_they_exist_in_the_site(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    rendered = render_issue(read_issue(LARGE), settings)
    links = event_links(rendered.issue, settings)
    for link in links:
        assert rendered.html.count(f'href="{link.ics_url}"') == 1
        assert rendered.html.count(link.google_url.replace("&", "&amp;")) == 1
        assert f"  Add to calendar: {link.ics_url}\n" in rendered.text
    files = build_site(settings, Archive((SentIssue(rendered.issue, SENT),), ()))
    for link in links:
        assert link.ics_url.removeprefix("https://eastfield.example/news/") in files
    diary = parse(files["diary.ics"])
    assert len(diary.walk("VEVENT")) == 10


@pytest.mark.parametrize("title", ["{{ subscriber.name }}'s walk", "Walk **with** `code` & <b>tags</b>"])
def test_titles_in_calendars_are_plain_public_text(tmp_path: Path, title: str) -> None:
    settings = settings_in(tmp_path)
    issue = write_issue(tmp_path, f'subject: S\nevents:\n  - date: 2027-06-06\n    title: "{title}"\n')
    (vevent,) = parse(diary_calendar((SentIssue(read_issue(issue), SENT),), settings)).walk("VEVENT")
    summary = str(vevent["SUMMARY"])
    assert "{{" not in summary and "<" not in summary and "**" not in summary
    assert summary in ("friend's walk", "Walk with code & tags")
