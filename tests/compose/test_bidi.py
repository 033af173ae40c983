"""bidi.py and where it is applied: a right-to-left value keeps its place in the HTML (its own
``<span dir="auto">``), the text part, the Subject and the To name (FSI ... PDI), and a page's
direction comes from its language; in Chromium the Arabic name stays between "Dear" and ", 3".
"""

from __future__ import annotations

import dataclasses
import email
from email import policy
from pathlib import Path
from typing import Any

import pytest

from conftest import ARTEFACTS, write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.bidi import FSI, PDI, direction, has_rtl, isolate
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
