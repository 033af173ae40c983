"""render.py: the example's HTML and text against golden files, and the structure mail
clients depend on."""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import REPO, write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.compose.envelope import fill_preview, preview_subscriber
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import SIZE_WARNING_BYTES, inline_css, render_issue
from newsletter_mailer.config import Settings, load_settings

GOLDEN = Path(__file__).parent / "golden"


def example_filled(settings: Settings) -> tuple[str, str]:
    rendered = render_issue(read_issue(REPO / "issues" / "example.md"), settings)
    return fill_preview(rendered, settings, signer_for(settings), preview_subscriber(settings))


@pytest.fixture
def repo_settings(example_settings: Settings) -> Settings:
    return example_settings


@pytest.mark.parametrize("suffix", ["html", "txt"])
def test_example_matches_golden_file(repo_settings: Settings, suffix: str) -> None:
    html, text = example_filled(repo_settings)
    actual = html if suffix == "html" else text
    golden = GOLDEN / f"example.{suffix}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(actual, encoding="utf-8")
    assert actual == golden.read_text(encoding="utf-8"), (
        f"rendering changed; inspect the difference, then UPDATE_GOLDEN=1 pytest {__file__}"
    )


def test_html_structure_for_mail_clients(repo_settings: Settings) -> None:
    html, _ = example_filled(repo_settings)
    assert html.lower().startswith("<!doctype html>")
    assert '<html lang="en-GB"' in html
    assert 'lang="und"' not in html
    assert "fonts.googleapis.com" not in html
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'\balt="[^"]+"', img) for img in images)
    media = re.findall(r"@media[^{]*\{[^}]*\}", html)
    assert any("!important" in block and "mj-column-per-100" in block for block in media)
    assert "<!--[if mso | IE]>" in html and "<!--[if mso]>" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html
    assert re.search(r"<h1[^>]*>Riverside Volunteers: December 2026</h1>", html)
    assert len(re.findall(r"<h2\b", html)) >= 7
    assert "Winter coat drive, our new repair café" in html  # preheader
    assert "max-width:600px" in html
    assert "12 Mill Lane, Riverton RV1 2AB" in html
    assert re.search(r'<a href="http://127\.0\.0\.1:8000/unsubscribe/[\w-]+"[^>]*>Unsubscribe</a>', html)
    assert len(html.encode()) < SIZE_WARNING_BYTES


def test_our_css_is_inlined_but_media_queries_stay_in_head(repo_settings: Settings) -> None:
    html, _ = example_filled(repo_settings)
    assert re.search(r'<h2 id="winter-coat-drive" style="[^"]*font-size:21px', html)
    assert "nlm-inline" not in html
    head = html[: html.index("</head>")]
    assert "@media only screen and (min-width:480px)" in head
    assert "data-premailer" not in html


def test_buttons_and_images_become_mjml_components(repo_settings: Settings) -> None:
    html, _ = example_filled(repo_settings)
    assert re.search(r'<a href="https://example.org/coats"[^>]*>\s*See all drop-off points\s*</a>', html)
    assert "{.button}" not in html
    assert "Our first trial run in October" in html


def test_highlight_matching_a_heading_links_to_it(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path)
    path = write_issue(tmp_path, "subject: S\nhighlights:\n  - Coat drive\n  - Other", "## Coat drive\n\nx\n")
    html = render_issue(read_issue(path), settings).html
    assert '<a href="#coat-drive"' in html and 'id="coat-drive"' in html


def test_premailer_never_fetches_remote_stylesheets() -> None:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"p { color: red; }")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/remote.css"
        out = inline_css(f'<html><head><link rel="stylesheet" href="{url}"></head><body><p>x</p></body></html>')
    finally:
        server.shutdown()
    assert hits == []
    assert out.startswith("<!doctype html>")


def test_logo_gets_alt_text_from_the_name(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(
        '[newsletter]\nname = "Hill Walkers"\n[brand]\nlogo = "https://example.org/logo.png"\n'
    )
    settings = load_settings(workspace=tmp_path)
    html = render_issue(read_issue(write_issue(tmp_path, "subject: S", "Hi\n")), settings).html
    assert re.search(r'<img alt="Hill Walkers"[^>]*src="https://example.org/logo.png"', html)


def test_workspace_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "newsletter.mjml").write_text(
        '<mjml lang="{{ newsletter.language }}"><mj-body><mj-section><mj-column>'
        "<mj-text>Custom {{ issue.subject }}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    settings = load_settings(workspace=tmp_path)
    html = render_issue(read_issue(write_issue(tmp_path, "subject: Mine")), settings).html
    assert "Custom Mine" in html


def test_a_full_monthly_issue_stays_clear_of_gmail_clipping(tmp_path: Path) -> None:
    """The shape of a real monthly issue: many highlights, twenty sections, a long diary."""
    highlights = "\n".join(f"  - take part in activity number {i} this month" for i in range(18))
    events = "\n".join(
        f'  - date: 2026-12-{i + 1:02d}\n    time: "19:30"\n    title: "Event {i}"\n'
        f'    where: "Hall {i}, Long Street, Riverton"\n    contact: "person{i}@example.org"'
        for i in range(10)
    )
    paragraph = (
        "Our group met again this month and planned the next steps of the campaign, with "
        "thanks to everyone who came along and helped. "
    ) * 3
    sections = "".join(
        f"## Section {i}: a heading of ordinary length\n\n{paragraph}\n\n"
        f"Email [the organiser of item {i}](mailto:organiser{i}@example.org) to join in.\n\n"
        + (f"[Sign up for item {i}](https://example.org/sign/{i}){{.button}}\n\n" if i % 3 == 0 else "")
        for i in range(20)
    )
    path = write_issue(
        tmp_path,
        f"subject: Monthly newsletter\nhighlights:\n{highlights}\nevents:\n{events}",
        "Welcome to this month's newsletter.\n\n" + sections,
    )
    rendered = render_issue(read_issue(path), load_settings(workspace=tmp_path))
    assert rendered.html.count("<h2") == 22  # highlights box, twenty sections, diary
    assert rendered.html_bytes < SIZE_WARNING_BYTES, f"{rendered.html_bytes / 1024:.0f} KB"


def test_broken_mjml_in_a_workspace_template_is_a_clear_error(tmp_path: Path) -> None:
    from newsletter_mailer.errors import IssueError

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "newsletter.mjml").write_text("<mjml><mj-body><mj-nonsense></mj-body></mjml>")
    settings = load_settings(workspace=tmp_path)
    with pytest.raises(IssueError) as caught:
        render_issue(read_issue(write_issue(tmp_path, "subject: S")), settings)
    assert str(caught.value).startswith(f"{tmp_path / 'templates' / 'newsletter.mjml'}: the MJML template is not valid")
