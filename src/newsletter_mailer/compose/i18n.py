"""The fixed words of the email, its text part, the confirmation mail and the served pages, in
the reader's language: gettext catalogues under ``locale/<lang>/LC_MESSAGES/newsletter.po``
(extracted and compiled with Babel; the ``.mo`` files are committed so a fresh clone needs only
Python), and dates and times formatted by Babel's CLDR data.

A language tag picks a catalogue by its primary subtag (``de-DE`` -> ``de``); one we do not
ship falls back to English, and ``check`` warns of it (compose/check.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "SHIPPED",
    "catalogue",
    "date_label",
    "event_when",
    "is_same_language",
    "is_shipped",
    "language_name",
    "page_language",
    "resolve",
    "template_environment",
]

DOMAIN = "newsletter"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
# English is the source language: its catalogue is the identity, shipped so every language is a file.
SHIPPED = ("en", "fr", "de", "es", "nl", "cy", "ar")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _primary(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-", 1)[0]


def is_shipped(language: str) -> bool:
    """Whether a catalogue of ours covers the tag (``fr-BE`` is covered by ``fr``)."""
    return _primary(language) in SHIPPED


def is_same_language(one: str, other: str) -> bool:
    """Whether two tags name one language by their primary subtag (``en-GB`` and ``en``)."""
    return _primary(one) == _primary(other)


def resolve(language: str) -> str:
    """The catalogue a language tag uses: its primary subtag when we ship it, else ``en``."""
    primary = _primary(language)
    return primary if primary in SHIPPED else "en"


def language_name(language: str) -> str:
    """A language's name in itself, as a chooser shows it (``français``, ``Cymraeg``, ``العربية``);
    the tag itself when CLDR does not know it."""
    try:
        name = Locale.parse(language.strip().replace("-", "_")).get_display_name()
    except (UnknownLocaleError, ValueError):
        return language
    return name[:1].upper() + name[1:] if name else language


def page_language(requested: str, offered: tuple[str, ...], default: str, *, shipped: bool = True) -> str:
    """The language a page is shown in, from a visitor's ``?lang=`` or a stored choice (hostile
    either way): one of ``offered`` (as configured) when its tag matches one, else (``shipped``)
    a catalogue we ship (its primary subtag), else ``default``. Never the visitor's text itself."""
    wanted = requested.strip().lower().replace("_", "-")
    if not wanted:
        return default
    for tag in offered:
        if tag.lower().replace("_", "-") == wanted:
            return tag
    primary = _primary(wanted)
    for tag in offered:
        if _primary(tag) == primary:
            return tag
    return primary if shipped and primary in SHIPPED else default


@functools.cache
def catalogue(language: str) -> NullTranslations:
    """The compiled catalogue for a tag, read once per process (never per message)."""
    code = resolve(language)
    if code == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [code], DOMAIN)


def template_environment(
    dirs: list[str], language: str, *, escaped: tuple[str, ...] = ("html",), escape_any_name: bool = False
) -> Environment:
    """A Jinja environment over ``dirs`` whose ``_()`` and ``{% trans %}`` speak ``language``: the
    email's (MJML and HTML templates escaped), the served pages' (``escape_any_name``: escaped
    whatever the template's name) and the web archive's (HTML escaped; its XML and ICS escape
    their own values)."""
    env = Environment(
        loader=FileSystemLoader(dirs),
        autoescape=select_autoescape(escaped, default_for_string=escape_any_name, default=escape_any_name),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(catalogue(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(resolve(language))


def _english(language: str) -> bool:
    return resolve(language) == "en"


def date_label(day: dt.date, language: str) -> str:
    """The issue's date: ``8 December 2026``, ``8 décembre 2026``, ``8. Dezember 2026``."""
    if _english(language):  # the English form the goldens hold, day first
        return f"{day.day} {day:%B %Y}"
    return format_date(day, format="long", locale=_locale(language))


def _clock(text: str, locale: Locale) -> str:
    match = _TIME.match(text.strip())
    if not match:
        return text
    return format_time(dt.time(int(match.group(1)), int(match.group(2))), format="short", locale=locale)


def event_when(day: dt.date, time: str, language: str) -> str:
    """A diary entry's day and time: ``Tue 8 Dec 2026, 19:00–21:00`` in English (any English tag:
    the form the issue has always had), ``mardi 8 décembre 2026, 19:00–21:00``,
    ``Dienstag, 8. Dezember 2026, 19:00–21:00``; times in the locale's own 12- or 24-hour form
    (Arabic: ``7:30 م``), joined to the day as CLDR joins them."""
    if _english(language):
        when = f"{day:%a} {day.day} {day:%b %Y}"
        return f"{when}, {time.replace('-', '–')}" if time else when
    locale = _locale(language)
    when = format_date(day, format="full", locale=locale)
    if not time:
        return when
    span = "–".join(_clock(part, locale) for part in time.split("-"))
    joined = str(get_datetime_format("full", locale=locale)).replace("'", "")  # "{1}, {0}"; Arabic "{1}، {0}"
    return joined.replace("{1}", when).replace("{0}", span)
