"""check.py: every finding has a test that triggers it and one that does not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_issue
from newsletter_mailer.compose.check import (
    Finding,
    check_issue,
    has_errors,
    message_findings,
    sample_message,
    size_summary,
)
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import GMAIL_CLIP_BYTES, render_issue
from newsletter_mailer.config import Settings, load_settings

CLEAN_SETTINGS = """
[newsletter]
name = "Walkers"
from = "news@walkers.example.org"
postal_address = "1 Hill Road, Dale"
[dkim]
domain = "walkers.example.org"
selector = "s"
key_file = "dkim.pem"
"""
KEY = generate_key("s", "walkers.example.org")


def setup(tmp_path: Path, settings_text: str = CLEAN_SETTINGS) -> Settings:
    (tmp_path / "newsletter.toml").write_text(settings_text)
    if not (tmp_path / "dkim.pem").exists():
        write_key(KEY, tmp_path / "dkim.pem")
    return load_settings(workspace=tmp_path)


def findings(
    tmp_path: Path, body: str = "Hello\n", front: str = "subject: Walk news", settings: Settings | None = None
) -> list[str]:
    settings = settings or setup(tmp_path)
    return [str(f) for f in check_issue(write_issue(tmp_path, front, body), settings)]


def has(found: list[str], level: str, fragment: str) -> bool:
    return any(f": {level}: " in f and fragment in f for f in found)


def test_a_clean_issue_with_good_settings_has_no_findings(tmp_path: Path) -> None:
    assert (
        findings(
            tmp_path,
            "Hi\n\n## Walk\n\nSee [the route map](https://example.org/map).\n"
            "\n![The ridge at dawn](https://example.org/r.jpg)\n",
        )
        == []
    )


def test_image_without_alt_is_an_error_at_its_line(tmp_path: Path) -> None:
    found = findings(tmp_path, "Hi\n\n![](https://example.org/a.png)\n")
    assert f"{tmp_path / 'issue.md'}:6: error: image https://example.org/a.png has no alt text" in found[0]


def test_image_over_http_is_a_warning(tmp_path: Path) -> None:
    assert has(findings(tmp_path, "![A view](http://example.org/a.png)\n"), "warning", "served over http")
    assert not has(findings(tmp_path, "![A view](https://example.org/a.png)\n"), "warning", "over http")


def test_relative_link_is_an_error(tmp_path: Path) -> None:
    assert has(findings(tmp_path, "[the map](/map)\n"), "error", "'/map' is not an absolute URL")
    assert findings(tmp_path, "[the map](https://example.org/map) [mail us](mailto:a@example.org)\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "here",
        "Click here",
        "this link",
        "read more",
        "Read more...",
        "Sign it here",
        "available here",
        "Register HERE!",
        "more info",
        "this page",
        "link",
        "Learn more",
        "see more",
    ],
)
def test_link_text_that_says_nothing_is_a_warning(tmp_path: Path, text: str) -> None:
    found = findings(tmp_path, f"Hi\n\nFor details click [{text}](https://example.org/x).\n")
    assert has(found, "warning", f"link text {text!r} says nothing out of context")
    assert f"{tmp_path / 'issue.md'}:6:" in found[0]


@pytest.mark.parametrize(
    "text", ["the October clean-up report", "where we meet", "there", "here is the route map", "more walks in May"]
)
def test_descriptive_link_text_is_fine(tmp_path: Path, text: str) -> None:
    assert findings(tmp_path, f"Read [{text}](https://example.org/x).\n") == []


def test_vague_button_and_highlight_texts_are_found_at_their_lines(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        "Hi\n\n[Book here](https://example.org/book){.button}\n",
        front="subject: Walk news\nhighlights:\n  - see [more info](https://example.org/i)",
    )
    issue = tmp_path / "issue.md"
    assert f"{issue}:4: warning: link text 'more info' says nothing out of context; name where it goes" in found
    assert f"{issue}:8: warning: link text 'Book here' says nothing out of context; name where it goes" in found


@pytest.mark.parametrize(
    ("accent", "fragment"),
    [
        ("#ffcc00", "[brand] accent #ffcc00 on white has contrast 1.5:1, under 4.5:1: headings and links use #866b00"),
        ("#2da44e", "buttons keep #2da44e with #1f2328 text"),
    ],
)
def test_an_accent_that_cannot_be_used_as_text_is_a_warning_at_its_line(
    tmp_path: Path, accent: str, fragment: str
) -> None:
    settings = setup(tmp_path, CLEAN_SETTINGS + f"[brand]\naccent = {accent!r}\n".replace("'", '"'))
    found = findings(tmp_path, settings=settings)
    assert len(found) == 1 and has(found, "warning", fragment)
    assert found[0].startswith(f"{tmp_path / 'newsletter.toml'}:11: ")


@pytest.mark.parametrize("accent", ["#1a6fb5", "#000", "#b35900"])
def test_an_accent_readable_on_white_gives_no_warning(tmp_path: Path, accent: str) -> None:
    settings = setup(tmp_path, CLEAN_SETTINGS + f'[brand]\naccent = "{accent}"\n')
    assert findings(tmp_path, settings=settings) == []


@pytest.mark.parametrize(("shade", "warned"), [("#5c4a00", False), ("#d4d400", True)])
def test_text_accent_is_used_as_set_and_warned_when_hard_to_read(tmp_path: Path, shade: str, warned: bool) -> None:
    settings = setup(tmp_path, CLEAN_SETTINGS + f'[brand]\naccent = "#ffff00"\ntext_accent = "{shade}"\n')
    found = findings(tmp_path, settings=settings)
    if warned:
        assert len(found) == 1 and has(found, "warning", f"[brand] text_accent {shade} has contrast 1.")
        assert found[0].startswith(f"{tmp_path / 'newsletter.toml'}:12: ")
    else:
        assert found == []


def test_subject_rules(tmp_path: Path) -> None:
    assert has(findings(tmp_path, front="subject: " + "word " * 40), "warning", "characters")
    assert has(findings(tmp_path, front="subject: BIG NEWS FOR ALL"), "warning", "all capitals")
    assert findings(tmp_path, front="subject: Big news from the NHS trust") == []
    found = findings(tmp_path, front='subject: ""')
    assert has(found, "error", "subject is required")


RELAY = '[smtp]\nhost = "smtp.walkers.example.org"\n'
PUBLIC = 'base_url = "https://walkers.example.org/news"\n'


def test_missing_dkim_and_misaligned_dkim_when_mail_goes_to_a_relay(tmp_path: Path) -> None:
    relayed = CLEAN_SETTINGS.replace("postal_address", PUBLIC + "postal_address") + RELAY
    no_dkim = relayed.split("[dkim]")[0] + RELAY
    assert has(findings(tmp_path, settings=setup(tmp_path, no_dkim)), "warning", "DKIM is not configured")
    other = relayed.replace('domain = "walkers.example.org"', 'domain = "mailer.example.net"')
    assert has(findings(tmp_path, settings=setup(tmp_path, other)), "warning", "not aligned")
    sub = relayed.replace('domain = "walkers.example.org"', 'domain = "example.org"')
    assert findings(tmp_path, settings=setup(tmp_path, sub)) == []  # relaxed alignment


def newsletter(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_no_dkim_warning_for_the_local_outbox(tmp_path: Path) -> None:
    setup(tmp_path, CLEAN_SETTINGS.split("[dkim]")[0])
    write_issue(tmp_path, "subject: Walk news", "Hello\n")
    result = newsletter("check", "issue.md", cwd=tmp_path)
    assert result.returncode == 0 and "DKIM" not in result.stdout, result.stdout


def test_outside_a_workspace_warnings_name_no_missing_file(tmp_path: Path) -> None:
    write_issue(tmp_path, "subject: Walk news", "Hello\n")
    result = newsletter("check", "issue.md", cwd=tmp_path, env={"NEWSLETTER_SMTP_HOST": "smtp.example.net"})
    assert "newsletter.toml:" not in result.stdout and str(tmp_path / "newsletter.toml") not in result.stdout
    assert "defaults (no newsletter.toml): warning: no postal address" in result.stdout


@pytest.mark.parametrize(
    ("base_url", "problems"),
    [
        ("http://127.0.0.1:8000", ["is on this machine or its private network", "is plain http"]),
        ("https://localhost/news", ["is on this machine or its private network"]),
        ("https://192.168.1.20", ["is on this machine or its private network"]),
        ("https://[::1]:8443", ["is on this machine or its private network"]),
        ("http://walkers.example.org", ["is plain http: the one-click unsubscribe header (RFC 8058) needs https"]),
        ("https://walkers.example.org", []),
    ],
)
def test_base_url_that_recipients_cannot_use_is_an_error_with_a_relay(
    tmp_path: Path, base_url: str, problems: list[str]
) -> None:
    text = CLEAN_SETTINGS.replace("postal_address", f'base_url = "{base_url}"\npostal_address')
    setup(tmp_path, text)
    write_issue(tmp_path, "subject: Walk news", "Hello\n")
    relayed = newsletter("check", "issue.md", cwd=tmp_path, env={"NEWSLETTER_SMTP_HOST": "smtp.walkers.example.org"})
    errors = [line for line in relayed.stdout.splitlines() if ": error: " in line]
    assert len(errors) == len(problems), relayed.stdout
    for line, problem in zip(errors, problems, strict=True):
        assert line.startswith(f"{tmp_path / 'newsletter.toml'}:5: error: base_url") and problem in line
    assert relayed.returncode == (1 if problems else 0)
    local = newsletter("check", "issue.md", cwd=tmp_path)
    assert local.returncode == 0 and "base_url" not in local.stdout


def test_list_id_outside_the_from_domain(tmp_path: Path) -> None:
    text = CLEAN_SETTINGS.replace("postal_address", 'list_id = "walkers.lists.example.net"\npostal_address')
    found = findings(tmp_path, settings=setup(tmp_path, text))
    assert has(found, "warning", "List-Id walkers.lists.example.net is not under the From domain")
    assert any(":5: warning: List-Id" in f for f in found)


def test_missing_postal_address(tmp_path: Path) -> None:
    text = CLEAN_SETTINGS.replace('postal_address = "1 Hill Road, Dale"\n', "")
    assert has(findings(tmp_path, settings=setup(tmp_path, text)), "warning", "no postal address")


def test_size_warning_from_90kb_and_error_from_102kb(tmp_path: Path) -> None:
    paragraph = "Walkers met on the hill and talked about the weather for a long time. " * 14

    def body(n: int) -> str:
        return "".join(f"## Part {i}\n\n{paragraph}\n\n" for i in range(n))

    small = findings(tmp_path, body(10))
    assert not any("KB" in f for f in small)
    assert has(findings(tmp_path, body(70)), "warning", "close to Gmail's 102 KB clipping limit")
    assert has(findings(tmp_path, body(80)), "error", "Gmail clips messages from 102 KB")


def test_template_without_unsubscribe_link_or_with_images_lacking_alt(tmp_path: Path) -> None:
    settings = setup(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "newsletter.mjml").write_text(
        '<mjml lang="en"><mj-body><mj-section><mj-column><mj-text>{{ issue.subject }}</mj-text>'
        '<mj-image src="http://example.org/logo.png" alt="" /></mj-column></mj-section></mj-body></mjml>'
    )
    found = findings(tmp_path, settings=settings)
    assert "templates/newsletter.mjml: error: the HTML has no unsubscribe link" in "\n".join(found)
    assert has(found, "error", "image http://example.org/logo.png in the template has no alt text")
    assert has(found, "warning", "image http://example.org/logo.png is served over http")


def test_missing_headers_and_foreign_message_id_in_a_finished_message(tmp_path: Path) -> None:
    settings = setup(tmp_path)
    rendered = render_issue(read_issue(write_issue(tmp_path, "subject: S", "Hi\n")), settings)
    data, url = sample_message(rendered, settings)
    assert message_findings(data, url, rendered, settings) == []
    headers, body = data.split(b"\r\n\r\n", 1)
    kept = [line for line in headers.split(b"\r\n") if not line.startswith((b"List-Unsubscribe", b" <http"))]
    stripped = b"\r\n".join(kept).replace(b"@walkers.example.org>", b"@elsewhere.example.net>") + b"\r\n\r\n" + body
    found = [str(f) for f in message_findings(stripped, url, rendered, settings)]
    assert has(found, "error", "the List-Unsubscribe header is missing")
    assert has(found, "error", "List-Unsubscribe-Post (one-click) header is missing")
    assert has(found, "warning", "Message-ID")


def test_placeholder_from_domain_with_a_real_relay(tmp_path: Path) -> None:
    text = CLEAN_SETTINGS.replace("walkers.example.org", "example.org") + '[smtp]\nhost = "smtp.example.net"\n'
    assert has(findings(tmp_path, settings=setup(tmp_path, text)), "warning", "placeholder")


def test_send_refuses_on_errors_unless_forced(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 2)
        (root / "issue.md").write_text("---\nsubject: S\n---\n![](https://example.org/a.png)\n")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=120,
            )

        refused = run("--yes")
        assert refused.returncode == 1 and "pre-send check found errors" in refused.stderr
        assert "issue.md:4: error: image" in refused.stderr and server.handler.messages == []
        forced = run("--yes", "--force")
        assert forced.returncode == 0 and len(server.handler.messages) == 2
        (root / "issue.md").write_text("---\nsubject: S\n---\nSee [here](https://example.org/).\n")
        warned = run("--test")
        assert warned.returncode == 0 and "warning: link text 'here'" in warned.stderr


def test_finding_format_and_error_detection() -> None:
    finding = Finding("a.md", 3, "error", "bad")
    assert str(finding) == "a.md:3: error: bad"
    assert str(Finding("a.md", None, "warning", "meh")) == "a.md: warning: meh"
    assert has_errors([finding]) and not has_errors([Finding("a", 1, "warning", "w")])


@pytest.mark.parametrize(
    ("front", "line"),
    [
        ('subject: S\nsignoff: "Bye, see [the page](/rel)"', 3),
        ("subject: S\nsignoff: |\n  Bye.\n\n  See [the page](/rel).", 6),
    ],
)
def test_findings_in_the_signoff_point_at_its_line(tmp_path: Path, front: str, line: int) -> None:
    found = findings(tmp_path, "Hi\n", front=front)
    assert any(f.startswith(f"{tmp_path / 'issue.md'}:{line}: error: link '/rel'") for f in found), found


def test_unmatched_highlights_and_long_past_events_are_warned_at_their_line(tmp_path: Path) -> None:
    setup(tmp_path)
    front = (
        "subject: Walk news\ndate: 2026-12-01\nhighlights:\n  - The ridge walk\n  - a secret\n"
        "  - See [the map](#the-ridge-walk)\nevents:\n  - date: 2025-12-08\n    title: Night walk\n"
        "  - date: 2026-11-28\n    title: Hill day\n"
    )
    write_issue(tmp_path, front, "Hi\n\n## The ridge walk\n\nIt was fine.\n")
    result = newsletter("check", "issue.md", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert warnings == [
        "issue.md:4: warning: 1 highlight matches no section heading, so it links nowhere (line 6: 'a secret'): "
        "name the section, as in `- text → Heading` or `- text: ...` with `section: Heading` (docs/issue-file.md)",
        "issue.md:9: warning: event 'Night walk' on 2025-12-08 is 358 days before the issue's date 2026-12-01: "
        "a wrong year?",
    ]


def test_the_bundled_example_checks_clean_with_its_settings(tmp_path: Path) -> None:
    from conftest import REPO

    config = str(REPO / "newsletter.toml")
    result = newsletter("--config", config, "check", str(REPO / "issues" / "example.md"), cwd=tmp_path)
    size, summary = result.stdout.strip().splitlines()
    assert result.returncode == 0 and summary == "0 error(s), 0 warning(s)", result.stdout
    assert re.fullmatch(
        r"HTML: \d+\.\d KB with 6 section\(s\) \(\d\.\d KB each\); Gmail would clip it at \d+ sections \(102 KB\)", size
    )


IMAGES = """Intro with an icon ![bike](https://example.org/bike.png) in a sentence.

- A list item ![tick](https://example.org/tick.png)

![one](https://example.org/1.png) ![two](https://example.org/2.png)

![Alone, drawn at the column's width](https://example.org/alone.png)

<img src="https://example.org/raw.png" alt="raw">

Sized <img src="https://example.org/s.png" alt="sized" width="40">, not <img src="u.png" alt="u" width="100%">.
"""


def test_images_whose_width_outlook_cannot_know_are_warned_at_their_lines(tmp_path: Path) -> None:
    found = [f for f in findings(tmp_path, IMAGES) if "has no pixel width" in f]
    issue = tmp_path / "issue.md"
    lines = [int(f.removeprefix(f"{issue}:").split(":")[0]) for f in found]
    assert lines == [4, 6, 8, 8, 12, 14], found  # sentence, list item, two in a row, raw HTML, width="100%"
    assert "'![bike](https://example.org/bike.png)'" in found[0] and "draws it 552 px wide" in found[0]
    assert not [f for f in found if "alone.png" in f or "s.png" in f]


def test_the_size_report_gives_the_section_count_at_which_gmail_clips(tmp_path: Path) -> None:
    settings = setup(tmp_path)
    sections = "".join(f"## Part {n}\n\n{'Some words about it. ' * 20}\n\n" for n in range(10))
    path = write_issue(tmp_path, "subject: Walk news", sections)
    report = size_summary(path, settings)
    assert report is not None and report.sections == 10 and report.clips_at is not None
    assert 300 < report.per_section < 1200  # 420 bytes of words and its share of layout
    grown = html_bytes_with(tmp_path, settings, report.clips_at)
    assert grown >= GMAIL_CLIP_BYTES > html_bytes_with(tmp_path, settings, report.clips_at - 2)
    assert str(report).startswith(f"HTML: {report.html_bytes / 1024:.1f} KB with 10 section(s)")
    assert f"Gmail would clip it at {report.clips_at} sections" in str(report)


def html_bytes_with(folder: Path, settings: Settings, count: int) -> int:
    sections = "".join(f"## Part {n}\n\n{'Some words about it. ' * 20}\n\n" for n in range(count))
    return render_issue(
        read_issue(write_issue(folder, "subject: Walk news", sections, name="grown.md")), settings
    ).html_bytes


def test_a_condition_asking_for_a_topic_not_offered_is_an_error_at_its_line(tmp_path: Path) -> None:
    settings = setup(tmp_path, CLEAN_SETTINGS + '[preferences]\ntopics = ["Diary", "Campaigns"]\n')
    body = (
        'Hi\n\n## Diary\n{only: "Dairy" in topics}\n\nDates.\n\n'
        '## Campaigns\n{only: "campaigns" in topics or branch == "North"}\n\nMarch.\n'
    )
    found = findings(tmp_path, body, settings=settings)
    typo = [f for f in found if "'Dairy' is not one of [preferences] topics (Diary, Campaigns)" in f]
    assert len(typo) == 1 and ":7: error:" in typo[0] and "section 'Diary'" in typo[0]
    assert not any("'campaigns' is not one" in f for f in found)  # case ignored, as a send matches it
    unset = setup(tmp_path, CLEAN_SETTINGS)  # no preferences page: topics is an ordinary column
    assert not any("[preferences] topics" in f for f in findings(tmp_path, body, settings=unset))
