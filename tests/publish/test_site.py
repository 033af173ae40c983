"""publish/site.py end to end: a real send through the recording SMTP server, then the site,
searched byte by byte for anything personal; drafts and test sends never published; a second
run changes no byte; every link resolves within the site."""

from __future__ import annotations

import email
import email.policy
import html
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import feedparser
import pytest

from newsletter_mailer.config import load_settings
from newsletter_mailer.publish.site import MANIFEST, publish_site
from smtp_servers import SMTPTestServer

SITE_URL = "https://news.example.org/archive"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=cwd, capture_output=True, text=True, timeout=180
    )


def workspace(root: Path, port: int, rows: list[dict[str, str]], extra: str = "") -> Path:
    (root / "issues").mkdir(parents=True)
    (root / "newsletter.toml").write_text(
        f"""
[newsletter]
name = "Sentinel Neighbours"
from = "news@example.org"
base_url = "https://lists.example.org"
subscribers = "subscribers.csv"
test_recipients = ["editor@example.org"]
timezone = "Europe/London"
[publish]
base_url = "{SITE_URL}"
{extra}
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
retry_delay = 0.01
""",
        encoding="utf-8",
    )
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(row[c] for c in columns) for row in rows]
    (root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


LETTER = """---
subject: "Hello {{ subscriber.name }}: the sentinel issue"
preheader: "For {{ subscriber.name }} in {{ subscriber.city }}"
date: 2027-02-01
highlights:
  - The news for {{ subscriber.name }}
events:
  - date: 2027-02-10
    time: "19:00-20:30"
    title: "Meeting for {{ subscriber.name }}"
    where: "The hall"
signoff: |
  Bye {{ subscriber.name }} ({{ subscriber.email }})
---
Dear {{ subscriber.name | default("neighbour") }} of {{ subscriber.city }}, member {{ subscriber.code }},

your address is {{ subscriber.email }}; [leave]({{ unsubscribe_url }}) any time.

## The news for {{ subscriber.name }}

[Your page](https://example.org/p?who={{ subscriber.code }}) and {{ subscriber.note }}.
"""


def sentinel_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for n in range(count):
        tag = uuid.uuid4().hex[:12]
        rows.append(
            {
                "email": f"sntl{n}{tag}@example.net",
                "name": f"Sntlname{n}{tag}",
                "city": f"Sntlcity{n}{tag}",
                "code": f"SNTLCODE{n}{tag}",
                "note": f"sntl-note-{n}-{tag}",
            }
        )
    return rows


def site_bytes(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def forms(value: str) -> set[str]:
    """The ways a value could be written into a page or a feed."""
    escaped = html.escape(value)
    return {value, value.lower(), escaped, html.escape(escaped), quote(value, safe=""), quote(value)}


def personal_values(rows: list[dict[str, str]], messages: list[bytes], senders: list[str]) -> set[str]:
    values = {v for row in rows for v in row.values()} | set(senders)
    for raw in messages:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        values.add(str(message["Message-ID"]).strip("<>"))
        values.update(re.findall(r"/unsubscribe/([\w.-]+)", str(message["List-Unsubscribe"])))
        body = message.get_body(("plain",))
        assert body is not None
        values.update(re.findall(r"/unsubscribe/([\w.-]+)", body.get_content()))
    assert len(values) > len(rows) * 5
    return values


SentSite = tuple[Path, list[dict[str, str]], set[str], list[bytes]]


@pytest.fixture(scope="module")
def sent_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentSite]:
    """A workspace that sent the sentinel issue to its list (the send wrote the site), a draft
    and a test send beside it. Tests that change it work on a copy."""
    rows = sentinel_rows(4)
    with SMTPTestServer() as server:
        root = workspace(tmp_path_factory.mktemp("sent") / "ws", server.port, rows)
        (root / "issues" / "letter.md").write_text(LETTER, encoding="utf-8")
        (root / "issues" / "draft.md").write_text("---\nsubject: DRAFTMARKER never sent\n---\nDraft.\n")
        (root / "issues" / "trial.md").write_text("---\nsubject: TESTMARKER test only\n---\nTrial.\n")
        tested = run("send", "issues/trial.md", "--test", cwd=root)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        sent = run("send", "issues/letter.md", "--yes", "--force", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "published 1 issue to" in sent.stdout
        messages = [m.data for m in server.handler.messages]
        senders = [m.mail_from for m in server.handler.messages]
    assert len(messages) == 5  # the test copy and one per row
    yield root, rows, personal_values(rows, messages, senders), messages


def test_no_personal_data_anywhere_in_the_site(sent_site: SentSite) -> None:
    root, _, personal, _ = sent_site
    again = run("publish", cwd=root)
    assert again.returncode == 0, again.stderr
    files = site_bytes(root / "site")
    assert "issues/letter/index.html" in files and "feed.xml" in files and "index.html" in files
    for name, data in files.items():
        text = data.decode("utf-8", "replace")
        for value in personal:
            for form in forms(value):
                assert form not in text, f"{value!r} ({form!r}) found in {name}"
    page = files["issues/letter/index.html"].decode()
    assert "Hello friend: the sentinel issue" in page  # the public reader's name
    # each reader's value sits in its own bidi span (dir="auto"): the public values, empty where none
    assert 'Dear <span dir="auto">friend</span> of <span dir="auto"></span>,' in page
    assert "The news for friend" in re.sub(r"<[^>]+>", "", page)
    assert "/unsubscribe/" not in page


def test_drafts_and_test_sends_are_never_published(sent_site: SentSite) -> None:
    root = sent_site[0]
    files = site_bytes(root / "site")
    assert not any(name.startswith(("issues/draft", "issues/trial")) for name in files)
    everything = b"".join(files.values())
    assert b"DRAFTMARKER" not in everything and b"TESTMARKER" not in everything


def test_a_second_publish_changes_no_byte(sent_site: SentSite) -> None:
    root = sent_site[0]
    site = root / "site"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in site.rglob("*") if p.is_file()}
    result = publish_site(load_settings(workspace=root))
    assert (result.written, result.removed) == (0, 0) and result.unchanged == len(before) - 1  # not the manifest
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in site.rglob("*") if p.is_file()}
    assert after == before


def test_the_feed_is_valid_atom_with_full_content(sent_site: SentSite) -> None:
    root = sent_site[0]
    feed = feedparser.parse((root / "site" / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Sentinel Neighbours"
    assert [link.href for link in feed.feed.links if link.rel == "self"] == [f"{SITE_URL}/feed.xml"]
    (entry,) = feed.entries
    assert entry.title == "Hello friend: the sentinel issue"
    assert entry.link == f"{SITE_URL}/issues/letter/"
    assert entry.id == entry.link
    assert entry.published_parsed is not None and entry.published_parsed == entry.updated_parsed
    content = entry.content[0]
    assert content.type == "text/html"
    words = re.sub(r"<[^>]+>", "", content.value)  # each reader's value sits in its own bidi span
    assert "The news for friend" in words and "Meeting for friend" in words
    assert f'href="{SITE_URL}/issues/letter/#the-news-for-subscriber-name"' in content.value


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for name in ("href", "src"):
            if found.get(name) and not (tag == "link" and found.get("rel") in ("canonical", "alternate")):
                self.links.append(str(found[name]))


def site_links(site: Path) -> Iterator[tuple[str, str, set[str]]]:
    """Each link of each page, and the ids of the page it is on."""
    for page in sorted(site.rglob("*.html")):
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for link in parser.links:
            yield str(page.relative_to(site)), link, parser.ids


def resolves(site: Path, page: str, link: str) -> bool:
    target = urlsplit(urljoin(f"http://site.invalid/{page}", link))
    path = unquote(target.path).lstrip("/")
    local = site / path
    if local.is_dir():
        local = local / "index.html"
    if not local.is_file():
        return False
    if target.fragment and local.suffix == ".html":
        ids = Links()
        ids.feed(local.read_text(encoding="utf-8"))
        return target.fragment in ids.ids
    return True


def test_every_link_within_the_site_resolves(sent_site: SentSite) -> None:
    root = sent_site[0]
    site = root / "site"
    checked = 0
    for page, link, _ in site_links(site):
        if re.match(r"^(https?:|mailto:|tel:)", link):
            continue
        assert resolves(site, page, link), f"{page}: {link} does not resolve within the site"
        checked += 1
    assert checked >= 8


def test_publish_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "newsletter.toml").write_text('[newsletter]\nname = "Empty"\n')
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("keep me")
    refused = run("publish", "-o", "mine", cwd=root)
    assert refused.returncode == 2
    assert "did not write" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert (root / "mine" / "notes.txt").read_text() == "keep me"
    (root / "a-file").write_text("x")
    assert run("publish", "-o", "a-file", cwd=root).returncode == 2
    empty = run("publish", cwd=root)
    assert empty.returncode == 0, empty.stderr
    assert "published 0 issues" in empty.stdout
    assert (root / "site" / "index.html").is_file() and (root / "site" / MANIFEST).is_file()


def test_an_issue_no_longer_in_the_folder_is_named_and_its_page_removed(sent_site: SentSite, tmp_path: Path) -> None:
    root = Path(shutil.copytree(sent_site[0], tmp_path / "ws"))
    (root / "site" / "extra.txt").write_text("the editor's own file")
    (root / "issues" / "letter.md").rename(root / "letter.md")
    result = run("publish", cwd=root)
    assert result.returncode == 0, result.stderr
    assert f"letter was sent, but {root / 'issues' / 'letter'}.md is not there" in result.stderr
    assert not (root / "site" / "issues" / "letter").exists()
    assert (root / "site" / "extra.txt").read_text() == "the editor's own file"


def test_send_does_not_publish_when_disabled(tmp_path: Path) -> None:
    rows = sentinel_rows(2)
    with SMTPTestServer() as server:
        root = workspace(tmp_path / "ws", server.port, rows, extra="enabled = false")
        (root / "issues" / "letter.md").write_text("---\nsubject: Quiet\n---\nHello.\n")
        sent = run("send", "issues/letter.md", "--yes", cwd=root)
    assert sent.returncode == 0, sent.stderr
    assert "published" not in sent.stdout and not (root / "site").exists()


def view_online_links(raw: bytes) -> tuple[list[str], list[str]]:
    """The "View in your browser" links of a message: in its HTML part, in its text part."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    in_html = re.findall(r'<a href="([^"]+)"[^>]*>View in your browser</a>', html_part.get_content())
    in_text = re.findall(r"^View in your browser: (\S+?)\r?$", text_part.get_content(), re.M)
    return in_html, in_text


def test_every_message_links_to_the_same_public_page(sent_site: SentSite) -> None:
    root, _, _, messages = sent_site
    links = {link for raw in messages[1:] for part in view_online_links(raw) for link in part}
    assert links == {f"{SITE_URL}/issues/letter/"}  # one page for every reader, no token in it
    assert all(view_online_links(raw) == ([f"{SITE_URL}/issues/letter/"],) * 2 for raw in messages[1:])
    test_copy = view_online_links(messages[0])
    assert test_copy == ([f"{SITE_URL}/issues/trial/"],) * 2  # a test copy links where its page will be
    (link,) = links
    page = root / "site" / link.removeprefix(f"{SITE_URL}/") / "index.html"
    assert "Hello friend: the sentinel issue" in page.read_text(encoding="utf-8")
