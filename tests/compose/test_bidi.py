"""bidi.py and where it is applied: a right-to-left value keeps its place in the HTML (its own
``<span dir="auto">``), the text part, the Subject and the To name (FSI ... PDI), and a page's
direction comes from its language; in Chromium the Arabic name stays between "Dear" and ", 3".
"""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from browser_checks import axe_violations, emulate
from conftest import ARTEFACTS, node_package, write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.bidi import FSI, LRI, PDI, RLM, direction, has_rtl, isolate
from newsletter_mailer.compose.envelope import MessageTemplate, fill_preview
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings

NAME = "مريم الحسيني"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("ar", "rtl"), ("he-IL", "rtl"), ("fa", "rtl"), ("ur_PK", "rtl"), ("en", "ltr"), ("fr", "ltr"), ("arn", "ltr")],
)
def test_direction_comes_from_the_language(language: str, expected: str) -> None:
    assert direction(language) == expected


def test_only_right_to_left_values_are_isolated() -> None:
    assert isolate(NAME) == f"{FSI}{NAME}{PDI}" and isolate("שרה") == "\u2068שרה\u2069"
    assert isolate("Zoë O'Brien") == "Zoë O'Brien" and not has_rtl("Zoë") and has_rtl("a ب")


@given(st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.from_regex(r"[a-z ]*[\u0590-\u08ff][a-z]*"))
def test_the_ascii_shortcut_isolates_exactly_as_the_search_does(value: str) -> None:
    # isolate() skips the search for ASCII text (per recipient: the name and the unsubscribe URL)
    assert isolate(value) == (f"{FSI}{value}{PDI}" if has_rtl(value) else value)


def rendered_for(tmp_path: Path, settings: Settings, language: str = "en-GB") -> Any:
    news = dataclasses.replace(settings.newsletter, language=language)
    settings = dataclasses.replace(settings, newsletter=news)
    issue = write_issue(
        tmp_path,
        'subject: "{{ subscriber.name }}, 3 new events"',
        '<img src="https://example.org/x.png" alt="For {{ subscriber.name }}">\n\n'
        "Dear {{ subscriber.name }}, 3 new events\n",
    )
    return render_issue(read_issue(issue), settings), settings


def test_the_name_is_isolated_in_html_text_subject_and_to(tmp_path: Path, settings: Settings) -> None:
    rendered, settings = rendered_for(tmp_path, settings)
    template = MessageTemplate(rendered, settings, signer_for(settings))
    data = template.envelope(Subscriber("maryam@example.org", NAME)).data
    message = email.message_from_bytes(data, policy=policy.default)
    assert message["Subject"] == f"{FSI}{NAME}{PDI}, 3 new events"
    assert message["To"].addresses[0].display_name == f"{FSI}{NAME}{PDI}"
    text, html = (part.get_content() for part in message.iter_parts())
    assert f"Dear {FSI}{NAME}{PDI}, 3 new events" in text
    assert f'Dear <span dir="auto">{NAME}</span>, 3 new events' in html
    assert f'<span dir="auto">{NAME}</span>, 3 new events</h1>' in html
    assert f"<title>{FSI}{NAME}{PDI}, 3 new events</title>" in html  # no markup can go in a title
    assert f'alt="For {FSI}{NAME}{PDI}"' in html
    assert '<html lang="en-GB" dir="ltr"' in html and 'dir="auto" xmlns' not in html
    latin = email.message_from_bytes(template.envelope(Subscriber("a@example.org", "Ada")).data, policy=policy.default)
    assert latin["Subject"] == "Ada, 3 new events" and latin["To"] == "Ada <a@example.org>"


def test_an_arabic_newsletter_is_right_to_left_whatever_its_content(tmp_path: Path, settings: Settings) -> None:
    rendered, _ = rendered_for(tmp_path, settings, language="ar")
    assert '<html lang="ar" dir="rtl"' in rendered.html


_ORDER = """
const p = Array.from(document.querySelectorAll('p')).find(e => e.textContent.includes('new events'));
const box = (node, start, end) => { const r = document.createRange(); r.setStart(node, start); r.setEnd(node, end);
                                    return r.getBoundingClientRect(); };
const before = p.firstChild, name = p.querySelector('span'), after = name.nextSibling;
const dear = box(before, 0, 4), three = box(after, after.textContent.indexOf('3'), after.textContent.indexOf('3') + 1);
const n = name.getBoundingClientRect();
return {dear: [dear.left, dear.right, dear.top], name: [n.left, n.right, n.top],
        three: [three.left, three.right, three.top], text: p.textContent};
"""


@pytest.mark.browser
def test_in_chromium_the_arabic_name_stays_between_dear_and_the_count(
    browser: Any, tmp_path: Path, settings: Settings
) -> None:
    rendered, settings = rendered_for(tmp_path, settings)
    html, _ = fill_preview(rendered, settings, signer_for(settings), Subscriber("maryam@example.org", NAME))
    page = tmp_path / "rtl.html"
    page.write_text(html, encoding="utf-8")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 640, "height": 600, "deviceScaleFactor": 1, "mobile": False}
    )
    browser.get(page.as_uri())
    boxes = browser.execute_script(_ORDER)
    assert boxes["text"] == f"Dear {NAME}, 3 new events"
    dear, name, three = boxes["dear"], boxes["name"], boxes["three"]
    assert dear[2] == name[2] == three[2], boxes  # one line
    assert dear[1] <= name[0] and name[1] <= three[0], f"not in reading order: {boxes}"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "rtl-name-in-ltr-sentence.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 5_000


ARABIC_ISSUE = Path(__file__).parent.parent / "fixtures" / "translated" / "2026-12.ar.md"


def arabic(settings: Settings) -> tuple[Any, Settings]:
    news = dataclasses.replace(settings.newsletter, language="ar", postal_address="12 Mill Lane, Riverton RV1 2AB")
    ready = dataclasses.replace(settings, newsletter=news)
    return render_issue(read_issue(ARABIC_ISSUE), ready), ready


def test_an_arabic_email_is_laid_out_right_to_left(settings: Settings) -> None:
    rendered, _ = arabic(settings)
    html = rendered.html
    assert '<html lang="ar" dir="rtl"' in html and "direction:rtl" in html
    assert "text-align:right" in html
    assert re.search(r'class="highlights"[^>]*style="[^"]*border-right:4px solid', html)
    assert "border-left" not in html  # the highlight box and the quote bar are on the right
    assert re.search(r'<ul style="margin:0 24px 12px 0', html)  # list markers on the right
    assert '<span dir="auto">Riverton Library, upstairs room</span></p>' in html
    assert re.search(r'<a href="tel:01234567890" dir="ltr"[^>]*>01234 567890</a>', html)
    assert re.search(r'<a href="mailto:repair@example.org" dir="ltr"[^>]*>', html)
    assert ">في هذا العدد</h2>" in html and ">المواعيد</h2>" in html


def test_an_arabic_text_part_reads_right_to_left_with_latin_values_isolated(settings: Settings) -> None:
    rendered, _ = arabic(settings)
    lines = rendered.text.split("\n")
    assert all(line.startswith(RLM) for line in lines if line and line != "-- "), lines
    assert "-- " in lines  # the signature delimiter stays exactly dash, dash, space
    assert f"{RLM}  للتواصل: {LRI}01234 567890{PDI}" in lines
    assert f"{RLM}  المكان: {FSI}Riverton Library, upstairs room{PDI}" in lines
    assert f"{RLM}{FSI}12 Mill Lane, Riverton RV1 2AB{PDI}" in lines
    assert f"{RLM}الثلاثاء، 8 ديسمبر 2026، 7:30 م–9:00 م" in lines


_LAYOUT = """
const card = document.querySelector('h1').closest('td').getBoundingClientRect();
const h1 = document.querySelector('h1'), range = document.createRange();
range.selectNodeContents(h1);
const words = range.getBoundingClientRect();
const box = document.querySelector('.highlights');
const li = document.querySelector('.highlights li').getBoundingClientRect();
const ul = document.querySelector('.highlights ul').getBoundingClientRect();
const button = document.querySelector('.nl-button').getBoundingClientRect();
const phone = Array.from(document.querySelectorAll('a[dir=ltr]')).find(e => e.textContent === '01234 567890');
const first = document.createRange(), second = document.createRange();
first.setStart(phone.firstChild, 0); first.setEnd(phone.firstChild, 5);
second.setStart(phone.firstChild, 6); second.setEnd(phone.firstChild, 12);
return {card: [card.left, card.right], words: [words.left, words.right],
        border: [getComputedStyle(box).borderRightWidth, getComputedStyle(box).borderLeftWidth],
        li: [li.left, li.right], ul: [ul.left, ul.right], button: [button.left, button.right],
        phone: [first.getBoundingClientRect().left, second.getBoundingClientRect().left],
        scroll: document.documentElement.scrollWidth - document.documentElement.clientWidth};
"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 640])
def test_in_chromium_the_arabic_email_is_right_to_left_and_axe_clean(
    browser: Any, tmp_path: Path, settings: Settings, width: int
) -> None:
    rendered, ready = arabic(settings)
    html, _ = fill_preview(rendered, ready, signer_for(ready), Subscriber("maryam@example.org", NAME))
    page = tmp_path / "ar.html"
    page.write_text(html, encoding="utf-8")
    emulate(browser, width, dark=False)
    browser.get(page.as_uri())
    box = browser.execute_script(_LAYOUT)
    assert box["scroll"] == 0, box
    assert box["card"][1] - box["words"][1] < 40, box  # the heading starts at the right edge
    assert box["border"] == ["4px", "0px"], box
    assert box["li"][1] < box["ul"][1] + 1 and box["ul"][1] < box["card"][1] - 40, box  # markers' room on the right
    assert box["card"][1] - box["button"][1] < 40, box  # the button sits at the start: the right
    assert box["phone"][0] < box["phone"][1], box  # "01234 567890" reads in order
    assert axe_violations(browser, (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")) == {}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(height, 8000), "deviceScaleFactor": 1, "mobile": width < 500},
    )
    shot = ARTEFACTS / f"email-ar-{'phone' if width == 375 else 'desktop'}.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
