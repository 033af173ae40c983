"""web/static.py end to end, as the issue's "done" reads: a seed-shaped issue with two local
photos and ten events is sent through the recording SMTP server, then `serve` (the real ASGI
app under uvicorn) serves the archive beside the unsubscribe pages; each message's "View in
your browser", image and calendar links land, the feed and the diary read back with feedparser
and icalendar, caching answers 304; and the same folder copied to a plain static host under
a sub-path works as it is."""

from __future__ import annotations

import email
import email.policy
import functools
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
import httpx
import icalendar
import pytest
from PIL import Image

from conftest import REPO, free_port, serve_asgi
from newsletter_mailer.config import load_settings
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer


def photo(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (30, 90, 160))
    for x in range(0, size[0], 60):
        image.paste((240, 240, 240), (x, 0, x + 12, size[1]))
    image.save(path, format="JPEG")


def seed_issue(folder: Path) -> Path:
    """The large fixture (ten events) with two of the editor's own photos in it."""
    text = (REPO / "tests" / "fixtures" / "large-issue.md").read_text(encoding="utf-8")
    first = text.index("\n## ")
    second = text.index("\n## ", first + 4)
    text = (
        text[:first]
        + '\n\n![Seed packets on a trestle table](images/seeds.jpg "Last spring\'s swap")\n'
        + text[first:second]
        + "\n\n![The bike doctor at work](images/bikes.jpg)\n"
        + text[second:]
    )
    photo(folder / "images" / "seeds.jpg", (2400, 1600))
    photo(folder / "images" / "bikes.jpg", (800, 1000))
    path = folder / "spring.md"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Sent:
    root: Path
    base: str
    messages: tuple[bytes, ...]
    subject: str


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Sent:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    root = tmp_path_factory.mktemp("done") / "ws"
    issue = seed_issue(root / "issues")
    (root / "newsletter.toml").write_text(
        f'[newsletter]\nname = "Eastfield Neighbours"\nfrom = "news@eastfield.example"\nbase_url = "{base}"\n'
        f'subscribers = "subscribers.csv"\ntimezone = "Europe/London"\n'
    )
    (root / "subscribers.csv").write_text("email,name\nann@example.net,Ann\nbob@example.net,Bob\n")
    with SMTPTestServer() as server:
        settings = (root / "newsletter.toml").read_text()
        (root / "newsletter.toml").write_text(
            settings + f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
        )
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", "send", str(issue), "--yes", "--force"],  # a loopback base_url
            cwd=root,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "copied 2 images of the issue into the web archive" in result.stdout
        messages = tuple(m.data for m in server.handler.messages)
    assert len(messages) == 2
    return Sent(root, base, messages, "Eastfield Neighbours: spring 2027, the long edition")


@pytest.fixture(scope="module")
def served(sent: Sent) -> Iterator[str]:
    port = int(sent.base.rsplit(":", 1)[1])
    with serve_asgi(create_app(load_settings(workspace=sent.root)), port=port) as base:
        yield base


def parts(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def test_view_in_your_browser_lands_on_the_same_page_for_every_reader(sent: Sent, served: str) -> None:
    links = set()
    for raw in sent.messages:
        html, text = parts(raw)
        (in_html,) = re.findall(r'<a href="([^"]+)"[^>]*>View in your browser</a>', html)
        (in_text,) = re.findall(r"^View in your browser: (\S+?)\r?$", text, re.M)
        links |= {in_html, in_text}
    assert links == {f"{served}/issues/spring/"}
    page = httpx.get(links.pop())
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>{sent.subject} · Eastfield Neighbours</title>" in page.text
    assert "Hello friend," in re.sub(r"<[^>]+>", "", page.text)  # the public reader, not Ann or Bob
    assert "Ann," not in page.text and "ann@example.net" not in page.text


def test_the_emails_images_and_calendar_links_resolve(sent: Sent, served: str) -> None:
    html, text = parts(sent.messages[0])
    images = re.findall(r'<img\b[^>]*src="(' + re.escape(served) + r'/media/[^"]+)"[^>]*>', html)
    assert len(images) == 2
    for url in images:
        response = httpx.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    calendars = re.findall(r'<a href="([^"]+\.ics)"[^>]*>Add to calendar</a>', html)
    assert len(calendars) == 10 and all(f"  Add to calendar: {url}" in text for url in calendars)
    for url in calendars:
        response = httpx.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "text/calendar; charset=utf-8"
        (event,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
        assert str(event["UID"]).startswith(url.rsplit("/", 1)[1].removesuffix(".ics"))
    assert len(re.findall(r"https://calendar\.google\.com/calendar/render\?action=TEMPLATE&amp;", html)) == 10


def test_the_feed_and_the_diary_read_back(sent: Sent, served: str) -> None:
    feed = httpx.get(f"{served}/feed.xml")
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo and [entry.title for entry in parsed.entries] == [sent.subject]
    assert parsed.entries[0].link == f"{served}/issues/spring/"
    assert len(re.findall(r"/media/[0-9a-f]{20}\.jpg", parsed.entries[0].content[0].value)) == 2
    diary = icalendar.Calendar.from_ical(httpx.get(f"{served}/diary.ics").content)
    assert len(diary.walk("VEVENT")) == 10 and diary.walk("VTIMEZONE")[0]["TZID"] == "Europe/London"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("href", "src"):
            value = found.get(name)
            if value and not re.match(r"^(mailto:|tel:|#)", value):
                self.links.append(value)


def internal_links(base: str, page: str) -> set[str]:
    """Every link of ``page`` (and of the pages it links) that stays on ``base``."""
    parser = _Links()
    parser.feed(httpx.get(urljoin(base, page)).text)
    absolute = {urljoin(urljoin(base, page), link).split("#")[0] for link in parser.links}
    return {link for link in absolute if link.startswith(base)}


def test_every_link_of_the_site_answers(sent: Sent, served: str) -> None:
    links = internal_links(f"{served}/", "") | internal_links(f"{served}/", "issues/spring/")
    assert len(links) >= 16
    for link in sorted(links):
        response = httpx.get(link, follow_redirects=True)
        assert response.status_code == 200, link


def test_caching_and_what_is_never_served(sent: Sent, served: str) -> None:
    first = httpx.get(f"{served}/issues/spring/")
    assert first.headers["cache-control"] == "public, max-age=300" and first.headers["etag"]
    again = httpx.get(f"{served}/issues/spring/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    (sent.root / "outside.txt").write_text("not for the web")
    (sent.root / "site" / "linked.txt").symlink_to(sent.root / "outside.txt")
    for path in ("/.newsletter-site", "/linked.txt", "/..%2fnewsletter.toml", "/%2e%2e/newsletter.toml", "/nope"):
        assert httpx.get(f"{served}{path}").status_code == 404, path
    assert httpx.get(f"{served}/subscribe").status_code == 200  # the pages beside it are still there


def test_the_unsubscribe_link_is_not_shadowed_by_the_archive(sent: Sent, served: str) -> None:
    message = email.message_from_bytes(sent.messages[0], policy=email.policy.default)
    (url,) = re.findall(r"<(http[^>]+/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"]))
    page = httpx.get(url)
    assert page.status_code == 200 and "Unsubscribe" in page.text and "<form" in page.text


def test_the_site_works_copied_to_a_plain_static_host_under_a_sub_path(sent: Sent, tmp_path: Path) -> None:
    docroot = tmp_path / "www"
    shutil.copytree(sent.root / "site", docroot / "news", symlinks=False, ignore=shutil.ignore_patterns("linked.txt"))
    handler = functools.partial(_Quiet, directory=str(docroot))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/news/"
        links = internal_links(base, "") | internal_links(base, "issues/spring/")
        assert len(links) >= 16
        for link in sorted(links):
            assert httpx.get(link, follow_redirects=True).status_code == 200, link
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_serve_answers_404_until_something_is_published(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nname = "Fresh"\n')
    with serve_asgi(create_app(load_settings(workspace=tmp_path))) as base:
        assert httpx.get(f"{base}/").status_code == 404
        assert httpx.get(f"{base}/healthz").status_code == 200


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_a_browser_shows_the_page_with_its_photos(sent: Sent, served: str, browser: Any, width: int) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    browser.get(f"{served}/issues/spring/")
    loaded = browser.execute_script(
        "return Array.from(document.images).filter(i => i.src.includes('/media/'))"
        ".map(i => [i.complete, i.naturalWidth, Math.round(i.getBoundingClientRect().width)])"
    )
    assert [(done, natural) for done, natural, _ in loaded] == [(True, 1104), (True, 800)]
    assert all(shown <= width for _, _, shown in loaded)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass
