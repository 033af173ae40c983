"""compose/online.py and the archive links in the email: "View in your browser" in both parts,
the same for every reader, and none when the newsletter has no web archive."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.envelope import fill_preview
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.online import issue_path, issue_url
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings

EXAMPLE = REPO / "issues" / "example.md"


def test_each_reader_gets_the_same_view_online_link_in_both_parts(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path, env={"NEWSLETTER_SECRET": "s"})
    rendered = render_issue(read_issue(EXAMPLE), settings)
    signer = signer_for(settings)
    url = "http://127.0.0.1:8000/issues/example/"
    for who in ("ann@example.org", "bob@example.net"):
        html, text = fill_preview(rendered, settings, signer, Subscriber(email=who, name=who.split("@")[0]))
        assert html.count(f'<a href="{url}"') == 1 and "View in your browser</a>" in html
        assert text.splitlines()[2] == f"View in your browser: {url}"
        assert who not in url


def test_no_archive_links_when_publishing_is_off(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text("[publish]\nenabled = false\n")
    settings = load_settings(workspace=tmp_path, env={})
    rendered = render_issue(read_issue(EXAMPLE), settings)
    assert "View in your browser" not in rendered.html and "View in your browser" not in rendered.text
    assert "/issues/example/" not in rendered.html + rendered.text


def test_issue_urls_are_under_the_sites_address_and_escaped(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[publish]\nbase_url = "https://n.example.org/archive/"\n')
    settings = load_settings(workspace=tmp_path, env={})
    assert issue_url(settings, "2026-12") == "https://n.example.org/archive/issues/2026-12/"
    assert issue_path("spring issue #2?") == "issues/spring%20issue%20%232%3F/"
