"""plaintext.py: the text part reads well on its own, wraps without breaking URLs, and lists
links as numbered references under their section."""

from __future__ import annotations

import re

from conftest import REPO
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.plaintext import TextWriter, wrap
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings

LONG_URL = "https://example.org/" + "a-very-long-path-segment/" * 5


def test_wrap_keeps_lines_short_and_urls_whole() -> None:
    text = ("word " * 40) + LONG_URL + " tail " + ("more " * 20)
    wrapped = wrap(text)
    for line in wrapped.splitlines():
        assert len(line) <= 76 or line == LONG_URL
    assert LONG_URL in wrapped.splitlines()


def test_links_become_numbered_references_under_their_section() -> None:
    writer = TextWriter()
    first = writer.blocks("Read [the report](https://example.org/r) now.")
    second = writer.blocks("Also [this page](https://example.org/p).\n\n- [x](https://example.org/x)")
    assert first == "Read the report [1] now.\n\n[1] https://example.org/r"
    assert "this page [2]" in second and "x [3]" in second
    assert second.endswith("[2] https://example.org/p\n[3] https://example.org/x")


def test_mailto_and_bare_links_are_not_repeated_as_references() -> None:
    writer = TextWriter()
    out = writer.blocks("Mail [a@example.org](mailto:a@example.org) or <https://example.org/>.")
    assert out == "Mail a@example.org or https://example.org/."


def test_lists_buttons_images_and_quotes() -> None:
    out = TextWriter().blocks(
        "- one\n- " + "long " * 30 + "\n\n1. first\n2. second\n\n"
        '[Sign it](https://example.org/s){.button}\n\n![A river](https://example.org/r.jpg "Caption")\n\n'
        "> quoted words\n"
    )
    lines = out.splitlines()
    assert lines[0] == "- one"
    assert lines[1].startswith("- long") and lines[2].startswith("  long")
    assert "1. first" in lines and "2. second" in lines
    assert "» Sign it [1]" in lines
    image = lines.index("[Image: A river]")
    assert lines[image + 1] == "Caption"
    assert "> quoted words" in lines
    assert all(len(line) <= 78 for line in lines if not line.startswith("["))


def test_example_text_part_has_every_part_and_short_lines(example_settings: Settings) -> None:
    settings = example_settings
    text = render_issue(read_issue(REPO / "issues" / "example.md"), settings).text
    for heading in ("IN THIS ISSUE", "WINTER COAT DRIVE", "DIARY", "Unsubscribe: "):
        assert heading in text
    assert "Tue 8 Dec 2026, 19:30–21:00" in text
    assert "12 Mill Lane" in text
    for line in text.splitlines():
        prefixes = r"\[\d+\] |Unsubscribe: |  Details: |  Add to calendar: |View in your browser: "
        assert len(line) <= 78 or re.fullmatch(rf"({prefixes})?\S+", line), line
    assert "<" not in text.replace("<script>", "")  # no HTML leaked into the text part
