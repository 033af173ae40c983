"""Issue 9, cases 7, 9 and 10 and the issue size limit: each mistake in an input is one line
``file:line: error: ...`` or ``error: ...`` with exit 2 from the real command, and the preview page
shows the same message instead of failing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from conftest import serve_asgi, write_issue
from newsletter_mailer.cli import main
from newsletter_mailer.web.preview import create_app


def cli(root: Path, *args: str) -> Result:
    with contextlib.chdir(root):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line(result: Result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("note: ")]
    assert lines == [expected] or (len(lines) == 1 and expected in lines[0]), result.output


ISSUE_MISTAKES = [
    (
        "subject: S\ndate: 2027-02-30",
        "Hi\n",
        "issue.md:3: error: date must be an ISO date like 2026-11-18, not '2027-02-30'",
    ),
    (
        "subject: S\nevents:\n  - date: 2027-13-01\n    title: T",
        "Hi\n",
        "issue.md:4: error: event date must be an ISO date like 2026-11-18, not '2027-13-01'",
    ),
    (
        "subject: S",
        "Hi {{ ''.__class__ }}\n",
        "issue.md:4: error: merge field {{ ''.__class__ }} is not allowed: '__class__' is not open to merge fields",
    ),
    ("subject: S", "Hi {{ 1/0 }}\n", "issue.md:4: error: merge field {{ 1/0 }} cannot be filled: division by zero"),
    (
        "subject: S",
        'Hi {{ "%099999999d"|format(1) }}\n',
        'issue.md:4: error: merge field {{ "%099999999d"|format(1) }} cannot be filled: '
        "the widths in this format string are too large for a merge field",
    ),
    (
        'subject: "Hello\\0world"',
        "Hi\n",
        "issue.md:2: error: subject contains a control character (U+0000): remove it",
    ),
    (
        "subject: S\nevents: " + "[" * 5000 + "]" * 5000,
        "Hi\n",
        "issue.md:3: error: front matter nests more than 20 levels deep: an issue needs a few",
    ),
    (
        "subject: S",
        "Hi\n\n## Events\n\nSee the table </td></tr></table> below.\n",
        "issue.md:8: error: raw HTML '</td>' breaks the email's layout",
    ),
]


@pytest.mark.parametrize(("front", "body", "expected"), ISSUE_MISTAKES)
def test_issue_mistakes_are_one_line_in_render_and_in_the_preview(
    tmp_path: Path, front: str, body: str, expected: str
) -> None:
    issue = write_issue(tmp_path, front, body)
    assert_one_line(cli(tmp_path, "render", "issue.md"), expected)
    message = expected.split(": error: ", 1)[1]
    with serve_asgi(create_app(issue)) as base:
        response = httpx.get(base + "/html")
        text = httpx.get(base + "/text")
    assert response.status_code == 200 and text.status_code == 200
    assert message in text.text
    assert "Internal Server Error" not in response.text


def test_a_bom_at_the_start_of_an_issue_is_not_content(tmp_path: Path) -> None:
    (tmp_path / "issue.md").write_bytes(b"\xef\xbb\xbf---\nsubject: Hello\n---\nHi\n")
    result = cli(tmp_path, "render", "issue.md")
    assert result.exit_code == 0, result.output


def test_an_oversized_issue_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with (tmp_path / "issue.md").open("w") as handle:
        handle.write("---\nsubject: S\n---\n")
        handle.truncate(6 * 1024 * 1024)
    result = cli(tmp_path, "render", "issue.md")
    assert_one_line(result, "issue.md: error: the issue file is 6 MB; an issue may be at most 5 MB")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (b'[newsletter]\nname = "Caf\xe9"\n', "newsletter.toml:2: error: not UTF-8 text"),
        (
            b'[newsletter]\nname = "A\\r\\nBcc: victim@example.net"\n',
            "newsletter.toml:2: error: [newsletter] name must be one line of text",
        ),
        (b'[brand]\naccent = "gren"\n', "newsletter.toml:2: error: [brand] accent must be a hex colour"),
        (b'[brand]\naccent = "#2e7d3"\n', "newsletter.toml:2: error: [brand] accent must be a hex colour"),
        (
            b'[brand]\naccent = "#ff0"\ntext_accent = "olive"\n',
            "newsletter.toml:3: error: [brand] text_accent must be a hex colour",
        ),
        (
            b'[dkim]\ndomain = "example.org"\nselector = "a b"\n',
            "newsletter.toml:3: error: [dkim] selector must be a DNS label",
        ),
    ],
)
def test_settings_mistakes_are_one_line_naming_the_key(tmp_path: Path, settings: bytes, expected: str) -> None:
    write_issue(tmp_path, "subject: S", "Hi\n")
    (tmp_path / "newsletter.toml").write_bytes(settings)
    for args in (("render", "issue.md"), ("--config", "newsletter.toml", "check", "issue.md")):
        assert_one_line(cli(tmp_path, *args), expected)


def test_a_suppression_import_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "gone.csv").write_bytes(b"email\na@example.org\nren\xe9@example.org\n")
    result = cli(tmp_path, "suppressions", "import", "gone.csv")
    assert_one_line(result, "gone.csv:3: error: not UTF-8 text")
    assert "imported" not in result.output


def test_render_into_a_path_that_cannot_be_created(tmp_path: Path) -> None:
    write_issue(tmp_path, "subject: S", "Hi\n")
    (tmp_path / "file").write_text("not a folder")
    result = cli(tmp_path, "render", "issue.md", "-o", "file/out")
    assert_one_line(result, "error: cannot write the rendered files there")


@pytest.mark.parametrize("command", ["serve", "preview"])
def test_a_port_out_of_range_is_one_line(tmp_path: Path, command: str) -> None:
    write_issue(tmp_path, "subject: S", "Hi\n")
    args = [command, "--port", "99999"] + (["issue.md"] if command == "preview" else [])
    assert_one_line(cli(tmp_path, *args), "error: --port must be between 1 and 65535, not 99999")


@pytest.mark.parametrize("selector", ["../../../x", "a b", "-x", "x/y", ""])
def test_a_dkim_selector_is_a_dns_label_and_nothing_is_written(tmp_path: Path, selector: str) -> None:
    result = cli(tmp_path, "dkim", "keygen", "--selector", selector)
    assert_one_line(result, "error: --selector must be a DNS label")
    assert not any(tmp_path.rglob("*.pem")) and not (tmp_path.parent.parent / "x.pem").exists()
