"""slips.py through `newsletter check` and `send`'s pre-flight: the merge-field slips Jinja lets
through are errors (or, for single-brace look-alikes, warnings) at their line, with a "did you
mean" from the list's columns."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import write_issue
from newsletter_mailer.cli import main
from newsletter_mailer.compose.slips import find_slips, suggest_column

LIST = "email,First Name,branch\nzoe@example.org,Zoë,Riverton\nada@example.org,Ada,Eastbank\n"


def check(workspace: Path, body: str, front: str = "subject: News") -> Result:
    (workspace / "subscribers.csv").write_text(LIST, encoding="utf-8")
    write_issue(workspace, front, body)
    with contextlib.chdir(workspace):
        return CliRunner().invoke(main, ["check", "issue.md"], catch_exceptions=False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hi\n\nDear {{ first_name }},\n", "issue.md:6: error: merge field {{ first_name }}: `first_name` is empty"),
        (
            'Hi\n\nDear {{ first_name | default("friend") }},\n',
            "(its `default` would go to every reader): merge fields name `subscriber.COLUMN`; "
            "did you mean `subscriber.first_name`?",
        ),
        ("Dear {{ frist_name }},\n", "issue.md:4: error: merge field {{ frist_name }}: `frist_name` is empty"),
        (
            "Dear {{ subscriber.first_name },\n\nBye\n",
            "issue.md:4: error: `{{ subscriber.first_name }` closes with one brace: "
            "write `{{ subscriber.first_name }}`",
        ),
        ("Dear { subscriber.first_name }},\n", "issue.md:4: error: `}}` closes no merge field"),
        ("Dear\n\n{{ subscriber.first_name }}},\n", "issue.md:6: error: `}}}` leaves a stray `}`"),
        ("Dear {{{ subscriber.first_name }}},\n", "issue.md:4: error: `{{{` has one brace too many"),
        ("Dear {{ subscriber.first_name ,\n", "issue.md:4: error: `{{` is never closed with `}}`"),
        ("Dear {% if x %} you\n", "issue.md:4: error: `{%` is not allowed"),
        ("Dear {% if x you\n", "issue.md:4: error: `{%` is not allowed"),
        (
            "Dear {{ subscriber.First Name }},\n",
            "issue.md:4: error: merge field {{ subscriber.First Name }}: a column name with spaces is written "
            "with `_`; did you mean `subscriber.first_name`?",
        ),
        (
            "Dear {{ subscriber.frist_name }},\n",
            "subscribers.csv; did you mean `subscriber.first_name`? its columns:",
        ),
    ],
)
def test_a_slip_is_an_error_at_its_line_with_a_suggestion(workspace: Path, body: str, expected: str) -> None:
    result = check(workspace, body)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "chunk after expression" not in result.output and "Traceback" not in result.output


def test_one_slip_is_said_once_not_again_by_the_renderer(workspace: Path) -> None:
    result = check(workspace, "Dear {{ subscriber.First Name }},\n")
    assert result.output.count("issue.md:4: error:") == 1, result.output


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Dear { subscriber.first_name },\n", "`{ subscriber.first_name }` has one brace each side"),
        ("Dear {first_name},\n", "did you mean `{{ subscriber.first_name }}`?"),
        ("Dear {branch} member,\n", "did you mean `{{ subscriber.branch }}`?"),
    ],
)
def test_a_single_brace_look_alike_is_a_warning(workspace: Path, body: str, expected: str) -> None:
    result = check(workspace, body)
    assert result.exit_code == 0, result.output
    assert "issue.md:4: warning: " in result.output and expected in result.output


def test_the_slips_in_the_subject_are_found_at_its_line(workspace: Path) -> None:
    result = check(workspace, "Hello\n", front='subject: "News for {{ branch }}"')
    assert result.exit_code == 1 and "issue.md:2: error: merge field {{ branch }}" in result.output
    assert "did you mean `subscriber.branch`?" in result.output


@pytest.mark.parametrize(
    "body",
    [
        'Dear {{ subscriber.first_name | default("friend") }}, in {{ subscriber.branch }}\n',
        "Unsubscribe here: {{ unsubscribe_url }}, sent to {{ email }}\n",
        "A set {1, 2} and a [button](https://example.org/){.button}, `${HOME}` and {.not a field}\n",
        "Dear {{ subscriber.first_name }}, {{ subscriber['branch'] | upper }}\n",
    ],
)
def test_well_formed_fields_and_other_braces_pass(workspace: Path, body: str) -> None:
    result = check(workspace, body)
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output or "error:" not in result.output


def test_send_refuses_to_send_a_slip(workspace: Path) -> None:
    (workspace / "subscribers.csv").write_text(LIST, encoding="utf-8")
    write_issue(workspace, "subject: News", "Dear {{ first_name }},\n")
    with contextlib.chdir(workspace):
        result = CliRunner().invoke(main, ["send", "issue.md", "--yes"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "issue.md:4: error: merge field {{ first_name }}" in result.output
    assert not list(workspace.glob("outbox/*.eml"))


def test_without_a_list_the_name_itself_is_suggested() -> None:
    slips = find_slips([("Dear {{ first_name }}", 7)])
    assert [(s.line, s.level) for s in slips] == [(7, "error")]
    assert "did you mean `subscriber.first_name`?" in slips[0].message
    assert suggest_column("Frist Name", ("email", "name", "first_name")) == "first_name"
    assert suggest_column("zzz", ("email", "name")) == ""
    far = find_slips([("{{ zzz }}", 1)], ("email", "name"))
    assert "the list's columns: email, name" in far[0].message


def test_render_says_how_to_write_a_column_name_with_spaces(workspace: Path) -> None:
    write_issue(workspace, "subject: News", "Dear {{ subscriber.First Name }},\n")
    with contextlib.chdir(workspace):
        result = CliRunner().invoke(main, ["render", "issue.md"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "a column name with spaces is written with `_`: subscriber.first_name" in result.output
    assert "chunk after expression" not in result.output
