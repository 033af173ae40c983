"""publish/page.py and publish/feed.py: what a hostile issue or reader value becomes on the
page and in the feed (escaped for where it lands), and links in the feed all absolute."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import feedparser

from conftest import write_issue
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.publish.archive import Archive, SentIssue
from newsletter_mailer.publish.feed import FEED_ENTRIES
from newsletter_mailer.publish.site import build_site

SITE = "https://news.example.org"
SENT = dt.datetime(2027, 4, 1, 12, 0, tzinfo=dt.UTC).timestamp()


def settings_in(root: Path, reader: str = 'name = "friend"') -> Settings:
    (root / "newsletter.toml").write_text(
        f'[newsletter]\nname = "N <&> Co"\nlanguage = "en-GB"\n'
        f'[publish]\nbase_url = "{SITE}"\n[publish.reader]\n{reader}\n'
    )
    return load_settings(workspace=root, env={})


def test_hostile_subject_and_reader_values_are_escaped_where_they_land(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, 'name = "<script>alert(1)</script>"\nsite = "javascript:alert(2)"')
    issue = write_issue(
        tmp_path,
        "subject: '\"><script>alert(3)</script> {{ subscriber.name }}'\npreheader: 'a \"quoted\" <b>preheader</b>'",
        "Hi {{ subscriber.name }}, see [your site]({{ subscriber.site }}).\n",
    )
    files = build_site(settings, Archive((SentIssue(read_issue(issue), SENT),), ()))
    page = files["issues/issue/index.html"].decode()
    assert "<script>" not in page and "javascript:" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<meta property="og:title" content="&#34;&gt;&lt;script&gt;alert(3)' in page
    assert '<a href="">your site</a>' in page  # a value that is no http(s) link is dropped
    assert "<title>&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt; &lt;script&gt;" in page
    assert "N &lt;&amp;&gt; Co" in page
    index = files["index.html"].decode()
    assert "<script>" not in index and "a &#34;quoted&#34; &lt;b&gt;preheader&lt;/b&gt;" in index
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo and feed.feed.title == "N <&> Co"
    assert (
        feed.entries[0].title == '"><script>alert(3)</script> <script>alert(1)</script>'
    )  # text, as a reader shows it


def test_the_feed_holds_the_last_twenty_with_every_link_absolute(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    sent = []
    for n in range(FEED_ENTRIES + 3):
        path = write_issue(
            tmp_path,
            f"subject: Issue {n}\nhighlights: auto",
            "Intro with ![a remote picture](https://img.example.org/p.jpg).\n\n## Part one\n\nText.\n",
            name=f"n{n:02}.md",
        )
        sent.append(SentIssue(read_issue(path), SENT + n * 86400))
    files = build_site(settings, Archive(tuple(reversed(sent)), ()))
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo
    assert [entry.title for entry in feed.entries] == [f"Issue {n}" for n in range(22, 2, -1)]
    assert feed.feed.updated == "2027-04-23T12:00:00Z" == feed.entries[0].updated
    for entry in feed.entries:
        links = re.findall(r'(?:href|src)="([^"]*)"', entry.content[0].value)
        assert links and all(link.startswith(("https://", "mailto:")) for link in links), links
    index = files["index.html"].decode()
    assert index.index("Issue 22") < index.index("Issue 21") < index.index("Issue 0<")  # newest first
    assert len(re.findall(r'<li><p class="muted"><time datetime="2027-0\d-\d\d">', index)) == 23


def test_an_issue_date_wins_over_the_day_it_was_sent(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    dated = write_issue(tmp_path, "subject: Dated\ndate: 2027-03-30", "x\n", name="dated.md")
    undated = write_issue(tmp_path, "subject: Undated", "x\n", name="undated.md")
    late = dt.datetime(2027, 4, 1, 23, 30, tzinfo=dt.UTC).timestamp()  # 2 April already in Sydney
    (tmp_path / "newsletter.toml").write_text('[newsletter]\ntimezone = "Australia/Sydney"\n')
    zoned = load_settings(workspace=tmp_path, env={})
    files = build_site(zoned, Archive((SentIssue(read_issue(undated), late), SentIssue(read_issue(dated), late)), ()))
    index = files["index.html"].decode()
    assert '<time datetime="2027-04-02">2 April 2027</time>' in index
    assert '<time datetime="2027-03-30">30 March 2027</time>' in index
    assert settings.publish.base_url == SITE
