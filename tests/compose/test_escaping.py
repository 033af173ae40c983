"""No value escaped twice, none left raw: every field of an issue carrying ``& " < > '`` reads
back as written in the HTML (parsed: text content and attributes), the text part and the
headers. ("Film night with Q&A" once showed "Details for Film night with Q&amp;A".)"""

from __future__ import annotations

import email
import json
import re
from email import policy
from html.parser import HTMLParser
from pathlib import Path

from conftest import write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.envelope import MessageTemplate
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings

VALUE = "Q&A \"x\" < > 'y'"
FIELDS = {
    "subject": f"Subject {VALUE}",
    "preheader": f"Preheader {VALUE}",
    "highlight": f"Highlight {VALUE}",
    "event": f"Film night with {VALUE}",
    "where": f"Hall {VALUE}",
    "contact": f"Ring Jo {VALUE}",
    "intro": f"Intro {VALUE}",
    "heading": f"Heading {VALUE}",
    "paragraph": f"Paragraph {VALUE}",
    "button": f"Book {VALUE}",
    "caption": f"Caption {VALUE}",
    "signoff": f"Signoff {VALUE}",
}
ALT = f"Alt {VALUE}"


def hostile_issue(folder: Path) -> Path:
    front = "\n".join(
        [
            f"subject: {json.dumps(FIELDS['subject'])}",
            f"preheader: {json.dumps(FIELDS['preheader'])}",
            "date: 2027-03-01",
            f"highlights:\n  - {json.dumps(FIELDS['highlight'])}",
            "events:\n  - date: 2027-03-04",
            f"    title: {json.dumps(FIELDS['event'])}",
            f"    where: {json.dumps(FIELDS['where'])}",
            f"    contact: {json.dumps(FIELDS['contact'])}",
            "    link: https://example.org/film",
            f"signoff: {json.dumps(FIELDS['signoff'])}",
        ]
    )
    body = (
        f"{FIELDS['intro']}\n\n## {FIELDS['heading']}\n\n{FIELDS['paragraph']}\n\n"
        f"[{FIELDS['button']}](https://example.org/book){{.button}}\n\n"
        f"![{ALT}](https://example.org/i.png ({FIELDS['caption']}))\n"
    )
    return write_issue(folder, front, body)


class _Document(HTMLParser):
    """The text a reader sees, block by block, and the attributes a reader hears."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.attributes: dict[str, list[str]] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_title = tag == "title"
        for name, value in attrs:
            self.attributes.setdefault(name, []).append(value or "")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.texts.append(data)


def test_every_field_reads_back_as_written_in_html_text_and_headers(tmp_path: Path, settings: Settings) -> None:
    rendered = render_issue(read_issue(hostile_issue(tmp_path)), settings)
    envelope = MessageTemplate(rendered, settings, signer_for(settings)).envelope(Subscriber("a@example.org", "Al"))
    message = email.message_from_bytes(envelope.data, policy=policy.default)
    assert message["Subject"] == FIELDS["subject"]
    text_part, html_part = (part.get_content() for part in message.iter_parts())

    document = _Document()
    document.feed(html_part)
    seen = re.sub(r"\s+", " ", "".join(document.texts))
    for name, value in FIELDS.items():
        assert seen.count(value) >= 1, f"{name} is not shown as written"
    assert document.title == FIELDS["subject"]
    assert not re.search(r"&(amp|lt|gt|quot|#\d+);", seen), "an entity shows as text: escaped twice"
    assert ALT in document.attributes["alt"]
    assert f"Details for {FIELDS['event']}" in document.attributes["aria-label"]
    assert "< >" not in html_part and "Q&A" not in html_part  # the raw characters never reach the markup

    flat = re.sub(r"\s+", " ", text_part)
    for name, value in FIELDS.items():
        if name != "preheader":  # the preheader is the inbox preview, not part of the text
            wanted = value.upper() if name == "heading" else value  # section titles are capitals there
            assert wanted in flat, f"{name} is not in the text part as written"
    assert "&amp;" not in text_part and "&lt;" not in text_part
