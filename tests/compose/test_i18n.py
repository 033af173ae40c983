"""i18n.py: every fixed word is in every shipped catalogue (read from the source with Babel's
extractors, compared with each .po parsed by Babel), the committed .mo files are the .po files
compiled, and a language picks its words and its dates in the email, the text part, the pages and
the confirmation mail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import io
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from conftest import REPO
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.check import settings_findings
from newsletter_mailer.compose.confirmation import confirmation_envelope
from newsletter_mailer.compose.envelope import fill_preview, preview_subscriber
from newsletter_mailer.compose.i18n import LOCALE_DIR, SHIPPED, date_label, event_when, resolve
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings
from newsletter_mailer.web.pages import Pages

PLACEHOLDER = re.compile(r"%\(\w+\)s")
TAG = re.compile(r"</?\w+[^>]*>")


def source_messages() -> set[str]:
    """The msgids the code and templates use, extracted as `pybabel extract -F babel.cfg` does."""
    with (REPO / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(REPO, method_map, options_map):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue_problems(catalog: Catalog, wanted: set[str]) -> list[str]:
    """What keeps a catalogue from being shipped: a missing, empty, fuzzy or extra string, or a
    translation that drops or adds a placeholder or a tag."""
    problems = [f"missing {m!r}" for m in sorted(wanted) if m not in catalog]
    for message in catalog:
        if not message.id:
            continue
        msgid = str(message.id)
        if msgid not in wanted:
            problems.append(f"not in the source {msgid!r}")
        if not message.string:
            problems.append(f"empty {msgid!r}")
        if message.fuzzy:
            problems.append(f"fuzzy {msgid!r}")
        if message.string and sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(str(message.string))):
            problems.append(f"placeholders differ in {msgid!r}")
        if message.string and len(TAG.findall(msgid)) != len(TAG.findall(str(message.string))):
            problems.append(f"tags differ in {msgid!r}")
    return problems


def read_catalogue(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "newsletter.po").open("rb") as po:
        return read_po(po, locale=language)


@pytest.fixture(scope="module")
def wanted() -> set[str]:
    found = source_messages()
    assert {"In this issue", "Diary", "Unsubscribe", "Where:", "Check your inbox"} <= found
    return found


@pytest.mark.parametrize("language", SHIPPED)
def test_every_shipped_catalogue_is_complete(language: str, wanted: set[str]) -> None:
    assert catalogue_problems(read_catalogue(language), wanted) == []


@pytest.mark.parametrize("language", SHIPPED)
def test_the_committed_mo_is_the_po_compiled(language: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, read_catalogue(language))
    committed = (LOCALE_DIR / language / "LC_MESSAGES" / "newsletter.mo").read_bytes()
    assert committed == compiled.getvalue(), f"run: pybabel compile -D newsletter -d {LOCALE_DIR} -l {language}"


def test_a_catalogue_missing_empty_fuzzy_or_broken_is_refused(wanted: set[str]) -> None:
    catalog = read_catalogue("fr")
    del catalog["Diary"]
    catalog["In this issue"].string = ""
    catalog["Details"].flags.add("fuzzy")
    catalog["Details for %(title)s"].string = "Détails"
    catalog["Contact:"].string = "<b>Contact</b>"
    assert catalogue_problems(catalog, wanted) == [
        "missing 'Diary'",
        "tags differ in 'Contact:'",
        "fuzzy 'Details'",
        "placeholders differ in 'Details for %(title)s'",
        "empty 'In this issue'",
    ]


@pytest.mark.parametrize(
    ("tag", "expected"), [("fr", "fr"), ("de-DE", "de"), ("cy_GB", "cy"), ("AR", "ar"), ("en-GB", "en"), ("xx", "en")]
)
def test_a_language_tag_picks_its_catalogue_by_primary_subtag(tag: str, expected: str) -> None:
    assert resolve(tag) == expected


def with_language(settings: Settings, language: str) -> Settings:
    return dataclasses.replace(settings, newsletter=dataclasses.replace(settings.newsletter, language=language))


def test_an_unknown_language_is_a_warning_and_english(settings: Settings) -> None:
    unknown = [f.message for f in settings_findings(with_language(settings, "tlh")) if "language" in f.message]
    assert unknown == [
        "[newsletter] language 'tlh' has no catalogue of ours (en, fr, de, es, nl, cy, ar): "
        "the fixed words and dates are in English"
    ]
    assert not [f for f in settings_findings(with_language(settings, "de-AT")) if "catalogue" in f.message]
    assert "Check your inbox" in Pages(with_language(settings, "tlh")).text("check_inbox")


def test_dates_and_times_by_locale() -> None:
    day = dt.date(2026, 12, 8)
    assert event_when(day, "19:30-21:00", "en-GB") == "Tue 8 Dec 2026, 19:30–21:00"  # as the goldens hold
    assert event_when(day, "19:30-21:00", "fr") == "mardi 8 décembre 2026, 19:30–21:00"
    assert event_when(day, "19:30", "de-DE") == "Dienstag, 8. Dezember 2026, 19:30"
    assert event_when(day, "", "es") == "martes, 8 de diciembre de 2026"
    assert date_label(day, "en") == "8 December 2026"
    assert date_label(day, "nl") == "8 december 2026"
    assert date_label(day, "cy") == "8 Rhagfyr 2026"


def test_a_twelve_hour_locale_writes_its_own_clock_and_joins_as_cldr_does() -> None:
    day = dt.date(2026, 12, 8)
    assert event_when(day, "19:30-21:00", "ar") == "الثلاثاء، 8 ديسمبر 2026، 7:30 م–9:00 م"
    assert event_when(day, "19:30-21:00", "en-US") == "Tue 8 Dec 2026, 19:30–21:00"  # English keeps its form


def example(settings: Settings, language: str) -> tuple[str, str]:
    ready = with_language(settings, language)
    rendered = render_issue(read_issue(REPO / "issues" / "example.md"), ready)
    return fill_preview(rendered, ready, signer_for(ready), preview_subscriber(ready))


@pytest.mark.parametrize(
    ("language", "words", "when"),
    [
        ("fr", ["Dans ce numéro", "Agenda", "Contact :", "Se désabonner"], "mardi 8 décembre 2026, 19:30–21:00"),
        ("de-DE", ["In dieser Ausgabe", "Termine", "Kontakt:", "Abmelden"], "Dienstag, 8. Dezember 2026, 19:30–21:00"),
        (
            "cy",
            ["Yn y rhifyn hwn", "Dyddiadur", "Cyswllt:", "Dad-danysgrifio"],
            "Dydd Mawrth, 8 Rhagfyr 2026, 19:30–21:00",
        ),
    ],
)
def test_the_email_and_its_text_part_in_the_language(
    example_settings: Settings, language: str, words: list[str], when: str
) -> None:
    html, text = example(example_settings, language)
    for word in words:
        assert word in html
    assert f'lang="{language}"' in html
    assert when in html and when in text
    assert words[0].upper() in text and words[1].upper() in text
    assert re.search(rf"^{re.escape(words[3])}\s?: http://127\.0\.0\.1:8000/unsubscribe/", text, re.MULTILINE)
    assert "In this issue" not in html + text and "Diary" not in html + text and "Unsubscribe" not in html + text


def test_the_pages_and_the_signup_form_in_the_language(settings: Settings) -> None:
    pages = Pages(with_language(settings, "de"))
    page = pages.text("unsubscribed", who="<script>x</script>", action="/resubscribe/t")
    assert "Sie sind von" in page and "Wieder anmelden" in page
    assert "<strong>&lt;script&gt;x&lt;/script&gt;</strong> erhält" in page  # the value escaped, our markup kept
    assert "<script>" not in page
    from newsletter_mailer.audience.signup import form_html

    form = form_html("/subscribe", ["Town"], gettext=pages.gettext)
    assert "E-Mail-Adresse" in form and "Town (optional)" in form and ">Anmelden</button>" in form


def test_the_confirmation_mail_in_the_language(tmp_path: Path, settings: Settings) -> None:
    ready = with_language(settings, "fr")
    envelope = confirmation_envelope(ready, Subscriber(email="a@example.org", name=""), "https://x.example/confirm/t")
    message = email.message_from_bytes(envelope.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert str(message["Subject"]).startswith("Merci de confirmer votre abonnement à ")
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    assert "Pour confirmer, ouvrez ce lien" in text.get_content()
    assert ">Confirmer votre abonnement</a>" in page.get_content()
