"""render.py: the example's HTML and text against golden files, and the structure mail
clients depend on."""

from __future__ import annotations

import os
import re
import threading
from html import unescape
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import REPO, write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.compose.envelope import fill_preview, preview_subscriber
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.palette import parse_colour
from newsletter_mailer.compose.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, inline_css, render_issue
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.errors import ConfigError

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


# What mail clients depend on in the final HTML, over the example and a large issue.
EXAMPLE = REPO / "issues" / "example.md"
LARGE = REPO / "tests" / "fixtures" / "large-issue.md"


def final_html(settings: Settings, path: Path) -> str:
    rendered = render_issue(read_issue(path), settings)
    return fill_preview(rendered, settings, signer_for(settings), preview_subscriber(settings))[0]


@pytest.mark.parametrize("path", [EXAMPLE, LARGE], ids=["example", "large"])
def test_every_image_keeps_a_pixel_width_attribute(repo_settings: Settings, path: Path) -> None:
    """Outlook for Windows sizes width="100%" against the image file, not the column."""
    images = re.findall(r"<img\b[^>]*>", final_html(repo_settings, path))
    assert len(images) >= (1 if path == EXAMPLE else 4)
    assert [img for img in images if not re.search(r'\swidth="552"', img)] == []


def test_the_logo_keeps_its_pixel_width(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[brand]\nlogo = "https://example.org/logo.png"\n')
    settings = load_settings(workspace=tmp_path)
    html = render_issue(read_issue(write_issue(tmp_path, "subject: S", "Hi\n")), settings).html
    (logo,) = re.findall(r"<img\b[^>]*>", html)
    assert ' width="180"' in logo and 'width="100%"' not in logo


@pytest.mark.parametrize("path", [EXAMPLE, LARGE], ids=["example", "large"])
def test_every_in_issue_link_has_a_named_ascii_anchor(repo_settings: Settings, path: Path) -> None:
    """Gmail, Outlook for Windows and Yahoo follow only <a name>, compared byte for byte."""
    html = final_html(repo_settings, path)
    targets = re.findall(r'href="#([^"]*)"', html)
    names = re.findall(r'<a name="([^"]*)"></a>', html)
    assert targets and set(targets) <= set(names)
    assert len(names) == len(set(names)) == len(read_issue(path).sections) + 1  # the sections and the diary
    assert [n for n in names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)] == []
    if path == EXAMPLE:
        assert '<a href="#a-repair-cafe-for-riverton"' in html  # its highlight names the section
        assert '<a name="a-repair-cafe-for-riverton"></a>' in html
    else:
        assert '<a href="#benevoles-wanted-for-the-french-conversation-table"' in html


class _TableNesting(HTMLParser):
    """Checks that table, tbody, tr and td open and close in order."""

    TAGS = ("table", "tbody", "tr", "td")

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.TAGS:
            self.stack.append(tag)
            self.tables += tag == "table"

    def handle_endtag(self, tag: str) -> None:
        if tag in self.TAGS:
            if not self.stack or self.stack[-1] != tag:
                self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} at {self.getpos()}")
            else:
                self.stack.pop()


def _as_seen_by(html: str, outlook: bool) -> str:
    """Outlook for Windows reads what is inside its conditional comments and skips what is
    marked [if !mso]; every other client does the opposite."""
    if outlook:
        html = re.sub(r"<!--\[if !mso\]><!-->.*?<!--<!\[endif\]-->", "", html, flags=re.S)
        html = re.sub(r"<!--\[if [^\]]*mso[^\]]*\]>(.*?)<!\[endif\]-->", r"\1", html, flags=re.S)
    return re.sub(r"<!--.*?-->", "", html, flags=re.S)


@pytest.mark.parametrize("path", [EXAMPLE, LARGE], ids=["example", "large"])
def test_outlook_conditional_tables_are_intact(repo_settings: Settings, path: Path) -> None:
    html = final_html(repo_settings, path)
    body = html[html.index("<body") :]
    assert body.count("<!--[if mso | IE]>") == len(re.findall(r"<!--\[if mso \| IE\]>.*?<!\[endif\]-->", body, re.S))
    for outlook in (True, False):
        checker = _TableNesting()
        checker.feed(_as_seen_by(body, outlook))
        assert checker.errors == [] and checker.stack == [], f"outlook={outlook}"
    outlook_tables = re.findall(r'<!--\[if mso \| IE\]><table [^>]*width="600"', body)
    assert len(outlook_tables) == 3  # header, the card, footer: however many sections the issue has


@pytest.mark.parametrize("path", [EXAMPLE, LARGE], ids=["example", "large"])
def test_the_inbox_preview_shows_the_preheader_alone(repo_settings: Settings, path: Path) -> None:
    """A client's preview is the body's first text, hidden or not; after the preheader come only
    invisible characters for longer than any client's preview."""
    html = final_html(repo_settings, path)
    body = re.sub(r"<!--.*?-->", "", html[html.index("<body") :], flags=re.S)
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", body))).strip()
    preheader = read_issue(path).preheader
    assert text.startswith(preheader)
    after = text[len(preheader) : len(preheader) + 250]
    assert len(after) == 250 and not any(c.isalnum() for c in after), after[:80]


def test_lists_and_quotes_indent_the_way_outlook_keeps(repo_settings: Settings) -> None:
    """Outlook for Windows honours padding only on table cells, and margins on blocks."""
    html = final_html(repo_settings, LARGE)
    lists = re.findall(r"<(?:ul|ol)\b[^>]*>", html)
    assert lists and all(re.search(r'style="margin:0 0 (?:12px|0) 24px; padding:0"', tag) for tag in lists)
    quotes = re.findall(r'<td class="quote-bar" style="([^"]*)"><blockquote style="([^"]*)">', html)
    assert quotes == [("border-left:3px solid #d0d7de; padding:0 0 0 12px", "margin:0; color:#57606a")]


def test_broken_images_show_their_alt_text_in_the_body_font(repo_settings: Settings) -> None:
    images = re.findall(r"<img\b[^>]*>", final_html(repo_settings, LARGE))
    assert images and all("font-family:Helvetica, Arial, sans-serif" in img for img in images)


def test_dark_mode_covers_buttons_headings_highlights_header_and_footer(repo_settings: Settings) -> None:
    html = final_html(repo_settings, EXAMPLE)
    head = html[: html.index("</head>")]
    for scope in ("", "[data-ogsc] ", "[data-ogsb] "):
        rule = "background" if scope != "[data-ogsc] " else "color"
        wanted = {
            "background": [".nl-card .nl-button td", ".nl-card .highlights td", ".nl-frame td", "body"],
            "color": [".nl-card .nl-button a", ".nl-card h2", ".nl-frame a", ".nl-card .muted"],
        }
        for selector in wanted[rule] if scope else wanted["background"] + wanted["color"]:
            assert f"{scope}{selector}" in head, f"{scope}{selector}"
    assert ".nl-card .nl-button a { color: #ffffff !important; }" in head
    assert ".nl-card h2, .nl-card a { color: #5393c8 !important; }" in head


def test_an_accent_is_made_readable_and_never_lands_raw(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[brand]\naccent = "#ffcc00"\n')
    settings = load_settings(workspace=tmp_path)
    html = render_issue(read_issue(write_issue(tmp_path, "subject: S", "## Title\n\nHi\n")), settings).html
    assert re.search(r'<h2 id="title" style="[^"]*color:#866b00"', html)
    assert "color:#1f2328" in html
    (tmp_path / "newsletter.toml").write_text('[brand]\naccent = "red;}</style><script>x"\n')
    with pytest.raises(ConfigError, match=r"\[brand\] accent must be a hex colour"):  # never reaches the HTML
        load_settings(workspace=tmp_path)


class _Buttons(HTMLParser):
    """Each button table: the cell's colour and the link's style and text."""

    def __init__(self) -> None:
        super().__init__()
        self.buttons: list[dict[str, str]] = []
        self._cell = ""
        self._in_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "table" and "nl-button" in found.get("class", "").split():
            self.buttons.append({})
        elif self.buttons and tag == "td" and not self.buttons[-1]:
            self.buttons[-1]["bgcolor"] = found.get("bgcolor", "")
        elif self.buttons and tag == "a" and "href" not in self.buttons[-1]:
            self.buttons[-1].update(href=found.get("href", ""), style=found.get("style", ""), text="")
            self._in_link = True

    def handle_endtag(self, tag: str) -> None:
        self._in_link = self._in_link and tag != "a"

    def handle_data(self, data: str) -> None:
        if self._in_link:
            self.buttons[-1]["text"] += data


def _style(style: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in style.split(";")) if k.strip()}


@pytest.mark.parametrize("accent", ["#1a6fb5", "#ffff00", "#1a1a1a"])
def test_buttons_are_links_whose_padding_is_a_border_so_outlook_makes_all_of_it_clickable(
    tmp_path: Path, accent: str
) -> None:
    """Outlook for Windows ignores padding on a link, so a padded link is clickable only on its
    label; a border in the button's colour is drawn, and is part of the link."""
    (tmp_path / "newsletter.toml").write_text(f'[brand]\naccent = "{accent}"\n')
    settings = load_settings(workspace=tmp_path)
    parser = _Buttons()
    parser.feed(final_html(settings, LARGE))
    assert len(parser.buttons) >= 3
    for button in parser.buttons:
        style = _style(button["style"])
        colour = parse_colour(accent)
        assert parse_colour(button["bgcolor"]) == colour and parse_colour(style["background"]) == colour, button
        assert style["display"] == "inline-block" and "padding" not in style, button
        kind, shade = style["border"].split()
        assert kind == "solid" and parse_colour(shade) == colour, button
        vertical, horizontal = (int(w.removesuffix("px")) for w in style["border-width"].split())
        line = int(style["line-height"].removesuffix("px"))
        assert vertical * 2 + line >= 44 and horizontal >= 16, button  # a 44 px target, all of it the link
        assert button["href"].startswith("https://") and button["text"].strip(), button


def test_images_anywhere_carry_a_pixel_width(tmp_path: Path) -> None:
    """In a sentence, a list item, two in a row, alone, raw HTML: Outlook for Windows draws an
    image without a pixel width at its file's size."""
    body = (
        "An icon ![bike](https://example.org/bike.png) in a sentence.\n\n- Item ![tick](https://example.org/t.png)\n\n"
        "![one](https://example.org/1.png) ![two](https://example.org/2.png)\n\n![Alone](https://example.org/a.png)\n\n"
        '<img src="https://example.org/raw.png" alt="raw">\n\nSized <img src="https://example.org/s.png" alt="s" '
        'width="40"> and <img src="https://example.org/u.png" alt="u" width="100%">.\n'
    )
    html = render_issue(read_issue(write_issue(tmp_path, "subject: S", body)), load_settings(workspace=tmp_path)).html
    images = {re.search(r'alt="([^"]*)"', img).group(1): img for img in re.findall(r"<img\b[^>]*>", html)}  # type: ignore[union-attr]
    assert sorted(images) == ["Alone", "bike", "one", "raw", "s", "tick", "two", "u"]
    widths = {alt: re.findall(r'\swidth="([^"]*)"', img) for alt, img in images.items()}
    assert widths.pop("s") == ["40"]
    assert set(map(tuple, widths.values())) == {("552",)}
    assert "width:100%" in images["Alone"] and "width:auto" in images["bike"]  # the file's size where CSS is read


def test_the_seed_shaped_issue_is_under_60_kb_and_forty_sections_stay_under_gmails_clip(
    repo_settings: Settings, tmp_path: Path
) -> None:
    large = render_issue(read_issue(LARGE), repo_settings)
    assert len(large.issue.sections) == 20 and large.html_bytes <= 60 * 1024, large.html_bytes
    head, body = LARGE.read_text(encoding="utf-8").split("\n---\n", 1)
    intro, *sections = re.split(r"(?m)^(?=## )", body)
    again = [re.sub(r"^## (.*)", r"## \1 (again)", s, count=1) for s in sections]
    forty = tmp_path / "forty.md"
    forty.write_text(f"{head}\n---\n{intro}{''.join(sections)}{''.join(again)}", encoding="utf-8")
    doubled = render_issue(read_issue(forty), repo_settings)
    assert len(doubled.issue.sections) == 40 and doubled.html_bytes < GMAIL_CLIP_BYTES
    content = sum(len(s.encode()) for s in sections)
    layout = (doubled.html_bytes - large.html_bytes - content) / 20
    assert layout < 600, f"each section adds {layout:.0f} bytes of layout"  # over 2 KB by this measure before


def test_apple_mail_and_ios_are_told_not_to_reformat_or_recolour(repo_settings: Settings) -> None:
    html, text = example_filled(repo_settings)
    head = html[: html.index("</head>")]
    assert '<meta name="x-apple-disable-message-reformatting">' in head
    assert '<meta name="format-detection" content="telephone=no, date=no, address=no, email=no, url=no">' in head
    assert re.search(
        r"a\[x-apple-data-detectors\] \{ color: inherit !important; text-decoration: none !important;", head
    )
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all("font-size:14px" in img and "line-height:1.4" in img for img in images)  # alt text
    assert "\n-- \nRiverside Volunteers\n" in text  # the signature delimiter keeps its space
    assert re.search(r'aria-label="Details for Repair café opening morning"[^>]*>Details</a>', html)


def test_a_nested_list_sits_close_to_its_parent_item(tmp_path: Path) -> None:
    body = "- Walks\n    - Short\n    - Long\n- Talks\n"
    html = render_issue(read_issue(write_issue(tmp_path, "subject: S", body)), load_settings(workspace=tmp_path)).html
    outer, inner = re.findall(r"<ul\b[^>]*>", html)
    assert 'style="margin:0 0 12px 24px; padding:0"' in outer
    assert 'style="margin:6px 0 0 24px; padding:0"' in inner


def test_an_image_in_a_highlight_or_an_event_title_gets_a_pixel_width_too(tmp_path: Path) -> None:
    front = (
        "subject: S\nhighlights:\n  - 'New ![star](https://example.org/star.png) walks'\n"
        "events:\n  - date: 2027-01-02\n    title: 'Walk ![boot](https://example.org/boot.png)'"
    )
    html = render_issue(read_issue(write_issue(tmp_path, front, "Hi\n")), load_settings(workspace=tmp_path)).html
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 2 and all(' width="552"' in img for img in images)
