"""merge.py: merge fields become placeholders once and values per recipient, escaped for
where they land."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.envelope import fill_preview
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.merge import FIXED_SLOTS, MergeFields
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import IssueError, MergeFieldError

BODY = """Hello {{ subscriber.name }}, branch {{ subscriber.branch | default("none") }}.

[Your profile](https://example.org/p?name={{ subscriber.name }})

[Your site]({{ subscriber.site }})
"""


def fill(tmp_path: Path, subscriber: Subscriber, body: str = BODY) -> tuple[str, str]:
    settings = load_settings(workspace=tmp_path)
    rendered = render_issue(read_issue(write_issue(tmp_path, "subject: S", body)), settings)
    return fill_preview(rendered, settings, signer_for(settings), subscriber)


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", 'Bob "B" & Co'])
def test_hostile_names_are_escaped_in_html_and_verbatim_in_text(tmp_path: Path, name: str) -> None:
    html, text = fill(tmp_path, Subscriber("bob@example.org", name))
    assert f"Hello {name}," in text
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert f'Hello <span dir="auto">{escaped}</span>,' in html
    assert "<script>" not in html


def test_value_inside_a_url_is_percent_encoded(tmp_path: Path) -> None:
    html, text = fill(tmp_path, Subscriber("bob@example.org", 'Bob "B" & Co'))
    assert 'href="https://example.org/p?name=Bob%20%22B%22%20%26%20Co"' in html
    assert "https://example.org/p?name=Bob%20%22B%22%20%26%20Co" in text


def test_whole_url_from_a_field_must_be_http_or_mailto(tmp_path: Path) -> None:
    good = Subscriber("a@example.org", "A", (("site", "https://example.org/a?x=1&y=2"),))
    html, _ = fill(tmp_path, good)
    assert 'href="https://example.org/a?x=1&amp;y=2"' in html
    evil = Subscriber("a@example.org", "A", (("site", "javascript:alert(1)"),))
    html, _ = fill(tmp_path, evil)
    assert "javascript:" not in html


def test_default_filter_applies_to_missing_and_empty_columns(tmp_path: Path) -> None:
    _, text = fill(tmp_path, Subscriber("a@example.org", "A", (("branch", ""),)))
    assert "branch none." in text
    _, text = fill(tmp_path, Subscriber("a@example.org", "A", (("branch", "East"),)))
    assert "branch East." in text


def test_placeholders_are_plain_alphanumerics_and_reused() -> None:
    fields = MergeFields()
    out = fields.substitute("{{ subscriber.name }} and {{subscriber.name}}", file=Path("x"), line=1)
    first, second = out.split(" and ")
    assert first == second and re.fullmatch(r"[a-z0-9]+", first)


def test_bad_merge_field_and_statements_are_errors_with_lines() -> None:
    fields = MergeFields()
    with pytest.raises(IssueError) as caught:
        fields.substitute("ok\n\n{{ subscriber. }}", file=Path("i.md"), line=10)
    assert caught.value.line == 12
    with pytest.raises(IssueError, match="only"):
        fields.substitute("{% if x %}y{% endif %}", file=Path("i.md"), line=1)


def test_merge_fields_in_the_subject_are_filled_per_recipient(tmp_path: Path) -> None:
    from newsletter_mailer.compose.envelope import MessageTemplate

    settings = load_settings(workspace=tmp_path)
    path = write_issue(tmp_path, 'subject: "News for {{ subscriber.name }}"', "Hi\n")
    template = MessageTemplate(render_issue(read_issue(path), settings), settings, signer_for(settings))
    data = template.envelope(Subscriber("a@example.org", "Zoë")).data
    import email
    from email import policy

    assert email.message_from_bytes(data, policy=policy.default)["Subject"] == "News for Zoë"


@pytest.mark.parametrize(
    "source",
    [
        "subscriber.name",
        'subscriber.branch | default("none")',
        "subscriber.branch|default('x y')",
        "subscriber.missing",
    ],
)
@pytest.mark.parametrize("subscriber", [{}, {"name": "Ada", "branch": "East"}, {"name": "", "branch": ""}])
def test_fast_path_gives_what_jinja_gives(source: str, subscriber: dict[str, str]) -> None:
    from jinja2.sandbox import SandboxedEnvironment

    from newsletter_mailer.compose.merge import _fast_path

    fast = _fast_path(source)
    assert fast is not None
    jinja = SandboxedEnvironment().compile_expression(source, undefined_to_none=False)
    present = {k: v for k, v in subscriber.items() if v}
    assert fast(subscriber=present) == str(jinja(subscriber=present))


def test_other_expressions_still_go_through_jinja(tmp_path: Path) -> None:
    _, text = fill(tmp_path, Subscriber("a@example.org", "ada"), "Hi {{ subscriber.name | upper }}!\n")
    assert "Hi ADA!" in text


@pytest.mark.parametrize(
    "source",
    [
        '"x" * 10**9',
        "[1] * 10**9",
        '"x".ljust(10**9)',
        '"x"|center(10**9)',
        "10 ** 100000",
        "subscriber.name * 10**8",
        # Amplifiers the numbers alone do not show: format widths, and one input put into another.
        '"%099999999d"|format(1)',
        '"%099999999d" % 1',
        '"%099999d" * 1000 % (1,) * 1000',
        '"{:>99999999}".format(1)',
        '"{0:099999999}".format_map([1])',
        '("x" * 100000)|replace("x", "y" * 100000)',
        '["x" * 100000] * 100000',
        '("\\n" * 100000)|indent(100000)',
        '("\\t" * 100000).expandtabs(100000)',
        '("x" * 50000)|wordwrap(1, wrapstring="y" * 50000)',
        '("a.com " * 10000)|urlize(target="x" * 100000)',
        'range(100000)|join("x" * 100000)',
        'range(100000)|map("string")|join("x" * 100000)',
    ],
)
def test_an_expression_that_would_build_gigabytes_is_refused_at_once(source: str) -> None:
    fields = MergeFields()
    fields.substitute("{{ " + source + " }}", file=Path("issue.md"), line=7)
    with pytest.raises(MergeFieldError, match=r"too large for a merge field") as caught:
        fields.values({"name": "Ann", "email": "ann@example.org"}, "https://example.org/u")
    assert caught.value.line == 7


def test_ordinary_arithmetic_repetition_and_filters_still_work() -> None:
    fields = MergeFields()
    sources = (
        '"-" * 3',
        "subscriber.name|upper",
        "2 ** 10",
        "subscriber.name|center(9)",
        '"%.2f"|format(3.14159)',
        '"%5d" % 42',
        '"{:>5}".format(subscriber.name)',
        'subscriber.name|replace("A", "Á")',
        'range(3)|map("string")|join(", ")',
        'subscriber.name|default("friend")|title',
    )
    for source in sources:
        fields.substitute("{{ " + source + " }}", file=Path("issue.md"), line=1)
    assert fields.values({"name": "Ann", "email": "a@example.org"}, "u")[FIXED_SLOTS:] == [
        "---",
        "ANN",
        "1024",
        "   Ann   ",
        "3.14",
        "   42",
        "  Ann",
        "Ánn",
        "0, 1, 2",
        "Ann",
    ]
