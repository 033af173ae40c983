"""The archive with an issue's translations: each at its own URL (``issues/2026-12/fr/``), every
version linking every other both ways with ``hreflang`` and ``x-default``, ``<html lang dir>``
right (Arabic right to left), the archive's own words in the page's language, a translated
email's "View in your browser" and "Add to calendar" links pointing at its own version, feeds
and calendars still whole; the Arabic page axe-clean in headless Chromium at 375 and 640 px."""

from __future__ import annotations

import email
import re
import shutil
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import feedparser
import icalendar
import pytest
from test_site import SITE_URL, run, site_bytes, site_links, workspace

from browser_checks import emulate, page_axe_violations
from conftest import ARTEFACTS, REPO, node_package
from smtp_servers import SMTPTestServer

ARABIC = REPO / "tests" / "fixtures" / "translated" / "2026-12.ar.md"
ISSUE = f"{SITE_URL}/issues/2026-12/"
ALTERNATES = [("en", ISSUE), ("ar", f"{ISSUE}ar/"), ("fr", f"{ISSUE}fr/"), ("x-default", ISSUE)]


def alternates(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)">', page)


def body(data: bytes, subtype: str) -> str:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bytes]]]:
    """The example issue in English with French and Arabic translations, sent to a list with a
    language column (the send publishes the site); the messages by recipient."""
    rows = [{"email": f"{lang or 'none'}@example.org", "name": "R", "language": lang} for lang in ("fr", "ar", "")]
    with SMTPTestServer() as server:
        root = workspace(tmp_path_factory.mktemp("langs") / "ws", server.port, rows)
        text = (REPO / "issues" / "example.md").read_text(encoding="utf-8")
        (root / "issues" / "2026-12.md").write_text(text, encoding="utf-8")
        french = text.replace("Riverside Volunteers: December 2026", "Bénévoles de Riverside : décembre 2026")
        (root / "issues" / "2026-12.fr.md").write_text(french, encoding="utf-8")
        shutil.copy(ARABIC, root / "issues" / "2026-12.ar.md")
        done = run("send", "issues/2026-12.md", "--yes", "--force", cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "published 1 issue to" in done.stdout
        yield root, {m.rcpt_tos[0]: m.data for m in server.handler.messages}


def test_each_translation_has_its_own_page_linked_both_ways(sent: tuple[Path, dict[str, bytes]]) -> None:
    site = sent[0] / "site"
    pages = {
        tag: (site / "issues" / "2026-12" / folder / "index.html")
        for tag, folder in [("en", ""), *[(t, t) for t in ("fr", "ar")]]
    }
    html = {tag: path.read_text(encoding="utf-8") for tag, path in pages.items()}
    for tag, page in html.items():
        assert alternates(page) == ALTERNATES, tag  # every version names every other, and itself
    assert '<html lang="en" dir="ltr">' in html["en"]
    assert '<html lang="fr" dir="ltr">' in html["fr"] and '<html lang="ar" dir="rtl">' in html["ar"]
    assert f'<link rel="canonical" href="{ISSUE}fr/">' in html["fr"]
    assert "Dans ce numéro" in html["fr"] and "Tous les numéros" in html["fr"] and "mardi 8 décembre 2026" in html["fr"]
    assert "Ajouter à l'agenda" in html["fr"] and "Google Agenda" in html["fr"]
    assert "في هذا العدد" in html["ar"] and "أضف إلى التقويم" in html["ar"] and "All issues" not in html["ar"]
    assert "In this issue" in html["en"] and "Add to calendar" in html["en"]
    # the visible chooser: the other versions, each named in its own language
    assert '<a href="fr/" hreflang="fr" lang="fr">Français</a>' in html["en"]
    assert '<a href="../" hreflang="en" lang="en">English</a>' in html["ar"]
    assert '<a href="../fr/" hreflang="fr" lang="fr">Français</a>' in html["ar"]


def test_every_link_of_every_version_resolves_and_feeds_still_work(sent: tuple[Path, dict[str, bytes]]) -> None:
    from test_site import resolves

    site = sent[0] / "site"
    checked = 0
    for page, link, _ in site_links(site):
        if not re.match(r"^(https?:|mailto:|tel:)", link):
            assert resolves(site, page, link), f"{page}: {link} does not resolve within the site"
            checked += 1
    assert checked >= 30
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert not feed.bozo and [e.link for e in feed.entries] == [ISSUE]  # the feed: the main language
    diary = icalendar.Calendar.from_ical((site / "diary.ics").read_bytes())
    assert len(diary.events) == 3
    french_events = sorted((site / "issues" / "2026-12" / "fr" / "events").glob("*.ics"))
    assert len(french_events) == 3
    one = icalendar.Calendar.from_ical(french_events[0].read_bytes()).events[0]
    assert f"De la part de Sentinel Neighbours : {ISSUE}fr/" in str(one["description"])


def test_a_translated_email_links_to_its_own_version(sent: tuple[Path, dict[str, bytes]]) -> None:
    root, messages = sent
    html, text = body(messages["fr@example.org"], "html"), body(messages["fr@example.org"], "plain")
    assert f'href="{ISSUE}fr/"' in html and "Voir dans votre navigateur</a>" in html
    assert f"Voir dans votre navigateur : {ISSUE}fr/" in text
    ics = re.findall(rf"{re.escape(ISSUE)}fr/events/(\w+\.ics)", html)
    assert len(ics) == 3 and all((root / "site" / "issues" / "2026-12" / "fr" / "events" / n).is_file() for n in ics)
    assert "Ajouter à l'agenda : " in text and "Add to calendar" not in text + html
    english = body(messages["none@example.org"], "html")
    assert f'href="{ISSUE}"' in english and "View in your browser</a>" in english and "/fr/" not in english


def test_a_second_publish_changes_no_byte(sent: tuple[Path, dict[str, bytes]]) -> None:
    root = sent[0]
    before = site_bytes(root / "site")
    again = run("publish", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert site_bytes(root / "site") == before and "issues/2026-12/ar/index.html" in before


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 640])
def test_the_arabic_page_is_right_to_left_and_axe_clean(
    browser: Any, sent: tuple[Path, dict[str, bytes]], width: int
) -> None:
    axe = (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")
    emulate(browser, width, False)
    browser.get((sent[0] / "site" / "issues" / "2026-12" / "ar" / "index.html").as_uri())
    assert browser.execute_script("return getComputedStyle(document.querySelector('main')).direction") == "rtl"
    name = browser.execute_script(
        "const a = document.querySelector('.masthead a').getBoundingClientRect(), m = document.querySelector('main')"
        ".getBoundingClientRect(); return [m.right - a.right, a.left - m.left]"
    )
    assert name[0] < 1 < name[1]  # the newsletter's name sits against the right edge
    box = browser.execute_script(
        "const s = getComputedStyle(document.querySelector('.highlights'));"
        "return [s.borderRightWidth, s.borderLeftWidth]"
    )
    assert box == ["4px", "0px"]
    assert page_axe_violations(browser, axe) == []
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"site-ar-{width}px.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
