"""web/pages.py: the served pages from templates/pages/, readable with any accent, in light and
dark mode, at phone and desktop widths (axe-core in headless Chromium), every value escaped."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from browser_checks import axe_violations, emulate
from conftest import ARTEFACTS, node_package, serve_asgi
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.config import BrandSettings, PreferencesSettings, Settings
from newsletter_mailer.web.pages import Pages
from newsletter_mailer.web.unsubscribe import create_app

ACCENTS = ("#ffff00", "#1a1a1a", "#1a6fb5")
HOSTILE = "<script>alert('x')</script> & \"Q\""
# Every page template with the values its handler passes.
PAGES: dict[str, dict[str, Any]] = {
    "unsubscribe": {"who": "ad***@example.org", "action": "/unsubscribe/t", "test": True},
    "unsubscribed": {"who": "ad***@example.org", "action": "/resubscribe/t"},
    "already_unsubscribed": {"who": "ad***@example.org", "action": "/resubscribe/t"},
    "resubscribed": {"who": "ad***@example.org", "action": "/unsubscribe/t"},
    "resubscribe_refused": {"who": "ad***@example.org"},
    "unsubscribe_invalid": {},
    "not_recorded": {"action": "/unsubscribe/t"},
    "unavailable": {},
    "check_inbox": {},
    "too_large": {},
    "confirm": {"who": "ad***@example.org", "action": "/confirm/t"},
    "confirmed": {"who": "ad***@example.org"},
    "confirm_invalid": {},
    "confirm_failed": {},
    "preferences": {
        "who": "ad***@example.org",
        "action": "/preferences/t",
        "unsubscribe": "/unsubscribe/t",
        "offered": ("Diary", "Campaigns", "Local news"),
        "ticked": ("Diary",),
        "months": (1, 3, 6),
        "paused_until": "4 March 2027",
        "error": "That topic is not one this newsletter offers; please choose from the list.",
        "unsubscribed": True,  # the notice shown too, to be checked with the rest
    },
    "preferences_invalid": {},
    "preferences_saved": {
        "who": "ad***@example.org",
        "topics": ("Diary",),
        "offered": ("Diary", "Campaigns"),
        "paused_until": "4 March 2027",
        "back": "/preferences/t",
        "unsubscribed": False,
    },
}


def with_accent(settings: Settings, accent: str, name: str = "Riverton Residents") -> Settings:
    """The settings with this accent and name, offering topics (the preferences page is served)."""
    news = dataclasses.replace(settings.newsletter, name=name)
    topics = PreferencesSettings(topics=("Diary", "Campaigns", "Local news"), enabled=True)
    return dataclasses.replace(settings, brand=BrandSettings(accent=accent), newsletter=news, preferences=topics)


@pytest.mark.parametrize("name", PAGES)
def test_every_value_on_every_page_is_escaped_once(settings: Settings, name: str) -> None:
    values = {key: HOSTILE if key == "who" else value for key, value in PAGES[name].items()}
    page = Pages(with_accent(settings, "#1a6fb5", name=HOSTILE)).text(name, **values)
    assert "<script>" not in page and "&amp;amp;" not in page
    if "who" in values:
        assert str(escape(HOSTILE)) in page
    title = page[page.index("<title>") + 7 : page.index("</title>")]
    assert html.unescape(title).count(HOSTILE) <= 1 and "<" not in title
    assert page.startswith("<!doctype html>") and 'dir="ltr">' in page


def test_the_label_on_a_yellow_button_is_dark_and_a_dark_accent_is_lightened_in_dark_mode(settings: Settings) -> None:
    yellow = Pages(with_accent(settings, "#ffff00")).text("unsubscribe", **PAGES["unsubscribe"])
    assert "color: #1f2328; background: #ffff00" in yellow
    dark = Pages(with_accent(settings, "#1a1a1a")).text("unsubscribe", **PAGES["unsubscribe"])
    assert "prefers-color-scheme: dark" in dark and "background: #707070" in dark


@pytest.fixture(scope="module")
def axe_source() -> str:
    return (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")


# A checkbox's or a radio button's target is its whole label, which a tap anywhere on toggles.
_INPUTS = """
return Array.from(document.querySelectorAll('input:not([tabindex="-1"]), button')).map(e => {
  const boxed = (e.type === 'checkbox' || e.type === 'radio') && e.closest('label');
  const target = boxed ? e.closest('label') : e;
  const r = target.getBoundingClientRect();
  return {name: e.name || e.textContent, size: parseFloat(getComputedStyle(target).fontSize), height: r.height};
});
"""


@pytest.mark.browser
@pytest.mark.parametrize("accent", ACCENTS)
def test_served_pages_pass_axe_with_any_accent_in_light_and_dark(
    axe_source: str, browser: Any, settings: Settings, accent: str, tmp_path: Path
) -> None:
    """The GET pages come from the running app; the result pages of a POST are the same
    templates, written out, so one browser walks them all."""
    site = with_accent(settings, accent)
    pages = Pages(site)
    files = {name: tmp_path / f"{name}.html" for name in PAGES}
    for name, file in files.items():
        file.write_text(pages.text(name, **PAGES[name]), encoding="utf-8")
    token = signer_for(site).token("ada.lovelace@example.org")
    with serve_asgi(create_app(site)) as base:
        assert httpx.get(f"{base}/subscribe").status_code == 200
        assert 'name="topic" value="Local news"' in httpx.get(f"{base}/preferences/{token}").text
        served = [f"{base}/subscribe", f"{base}/unsubscribe/{token}", f"{base}/preferences/{token}"]
        urls = [*served, *(f.as_uri() for f in files.values())]
        for width in (375, 640):
            for dark in (False, True):
                emulate(browser, width, dark, offline=False)
                for url in urls:
                    browser.get(url)
                    found = axe_violations(browser, axe_source)
                    assert found == {}, (url, width, dark, found)
                    for control in browser.execute_script(_INPUTS):
                        assert control["size"] >= 16 and control["height"] >= 44, (url, control)


_RTL_PAGE = """
const main = document.querySelector('main').getBoundingClientRect();
const range = document.createRange();
range.selectNodeContents(document.querySelector('h1'));
const words = range.getBoundingClientRect();
const button = document.querySelector('button');
return {dir: document.documentElement.dir, main: [main.left, main.right], words: [words.left, words.right],
        button: button ? button.getBoundingClientRect().right : null,
        scroll: document.documentElement.scrollWidth - document.documentElement.clientWidth};
"""


@pytest.mark.browser
def test_arabic_pages_are_right_to_left_in_their_words_and_axe_clean(
    axe_source: str, browser: Any, settings: Settings, tmp_path: Path
) -> None:
    """The served app in Arabic: the form and the unsubscribe page from uvicorn, every other
    page written out; each laid out from the right, no sideways scroll, axe clean at both widths."""
    arabic = dataclasses.replace(settings.newsletter, language="ar")
    site = dataclasses.replace(with_accent(settings, "#1a6fb5"), newsletter=arabic)
    pages = Pages(site)
    files = {name: tmp_path / f"{name}.html" for name in PAGES}
    for name, file in files.items():
        file.write_text(pages.text(name, **PAGES[name]), encoding="utf-8")
    assert "\u2066ad***@example.org\u2069" in files["unsubscribed"].read_text(encoding="utf-8")
    token = signer_for(site).token("ada.lovelace@example.org")
    with serve_asgi(create_app(site)) as base:
        form = httpx.get(f"{base}/subscribe").text
        assert '<html lang="ar" dir="rtl">' in form and "عنوان البريد الإلكتروني" in form and ">اشترك</button>" in form
        served = [f"{base}/subscribe", f"{base}/unsubscribe/{token}", f"{base}/preferences/{token}"]
        urls = [*served, *(f.as_uri() for f in files.values())]
        for width in (375, 640):
            emulate(browser, width, False, offline=False)
            for url in urls:
                browser.get(url)
                box = browser.execute_script(_RTL_PAGE)
                assert box["dir"] == "rtl" and box["scroll"] == 0, (url, box)
                assert box["main"][1] - box["words"][1] < 40, (url, box)  # the heading starts at the right
                if box["button"] is not None:
                    assert box["main"][1] - box["button"] < 40, (url, box)
                assert axe_violations(browser, axe_source) == {}, url
            browser.get(f"{base}/subscribe")
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTEFACTS / f"page-subscribe-ar-{width}.png"
            browser.save_screenshot(str(shot))
            assert shot.stat().st_size > 5_000
