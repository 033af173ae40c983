"""issue.py: front matter, sections, events and every error an editor can make."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import REPO, write_issue
from newsletter_mailer.compose.issue import ALLOWED_KEYS, read_issue
from newsletter_mailer.errors import IssueError


def test_example_issue_parses_into_sections_highlights_and_sorted_diary() -> None:
    issue = read_issue(REPO / "issues" / "example.md")
    assert issue.subject.startswith("Riverside Volunteers")
    assert issue.date == dt.date(2026, 12, 1)
    assert len(issue.sections) == 6
    assert issue.sections[0].title.startswith("Members' meeting")
    assert [e.date for e in issue.events] == sorted(e.date for e in issue.events)
    assert "Dear" in issue.intro and "##" not in issue.intro
    assert issue.key == "example"


def test_heading_lines_point_into_the_file(tmp_path: Path) -> None:
    path = write_issue(tmp_path, "subject: S", "Intro\n\n## First\n\nText\n\n## Second\nMore\n")
    issue = read_issue(path)
    lines = path.read_text().splitlines()
    for section in issue.sections:
        assert lines[section.line - 1] == f"## {section.title}"


def test_heading_inside_code_block_does_not_start_a_section(tmp_path: Path) -> None:
    path = write_issue(tmp_path, "subject: S", "## Real\n\n```\n## not a heading\n```\n")
    issue = read_issue(path)
    assert [s.title for s in issue.sections] == ["Real"]
    assert "## not a heading" in issue.sections[0].body


def test_highlights_auto_lists_section_headings_with_anchors(tmp_path: Path) -> None:
    path = write_issue(tmp_path, "subject: S\nhighlights: auto", "## One thing\n\nx\n\n## Another\n\ny\n")
    issue = read_issue(path)
    assert [(h.text, h.anchor) for h in issue.highlights] == [("One thing", "one-thing"), ("Another", "another")]


def test_highlight_links_to_section_only_when_heading_matches(tmp_path: Path) -> None:
    path = write_issue(tmp_path, "subject: S\nhighlights:\n  - Coat drive\n  - something else", "## Coat drive\n\nx\n")
    anchors = [h.anchor for h in read_issue(path).highlights]
    assert anchors == ["coat-drive", ""]


@pytest.mark.parametrize(
    ("title", "anchor"),
    [
        ("A repair café for Riverton", "a-repair-cafe-for-riverton"),
        ("Bénévoles **wanted**", "benevoles-wanted"),
        ("Members' meeting: 8 December", "members-meeting-8-december"),
        ("Ελληνικά", "section"),
        ("日本語 news", "news"),
    ],
)
def test_anchors_are_ascii_for_clients_that_compare_bytes(tmp_path: Path, title: str, anchor: str) -> None:
    path = write_issue(tmp_path, "subject: S\nhighlights: auto", f"## {title}\n\nx\n")
    issue = read_issue(path)
    assert [s.anchor for s in issue.sections] == [h.anchor for h in issue.highlights] == [anchor]


def test_duplicate_headings_get_distinct_anchors(tmp_path: Path) -> None:
    path = write_issue(tmp_path, "subject: S", "## News\n\na\n\n## News\n\nb\n")
    assert [s.anchor for s in read_issue(path).sections] == ["news", "news-2"]


def test_event_fields_and_time_range(tmp_path: Path) -> None:
    front = """subject: S
events:
  - date: 2026-12-08
    time: "18:00-19:30"
    title: "Meeting"
    where: Library
    contact: a@example.org
    link: https://example.org/m
  - date: "2026-12-01"
    title: Earlier
"""
    events = read_issue(write_issue(tmp_path, front)).events
    assert [e.title for e in events] == ["Earlier", "Meeting"]
    assert events[1].time == "18:00-19:30" and events[1].where == "Library"


@pytest.mark.parametrize(
    ("front", "line", "fragment"),
    [
        ("subject: [unclosed", 2, "not valid YAML"),
        ("subject: S\ncolour: red", 3, "unknown key 'colour'"),
        ("preheader: P", 2, "subject is required"),
        ('subject: ""', 2, "subject is required"),
        ("subject: S\ndate: 31/12/2026", 3, "ISO date"),
        ("subject: S\nevents:\n  - title: No date", 4, "missing 'date'"),
        ("subject: S\nevents:\n  - date: 2026-12-01", 4, "missing 'title'"),
        ("subject: S\nevents:\n  - date: 2026-12-01\n    title: T\n    venue: X", 6, "unknown event key 'venue'"),
        ("subject: S\nevents:\n  - date: 2026-12-01\n    title: T\n    time: 7pm", 6, "19:30"),
        ("subject: S\nevents: tomorrow", 3, "events must be a list"),
        ("subject: S\nhighlights: 3", 3, "highlights must be a list"),
        ("- a list", 2, "must be a mapping"),
    ],
)
def test_front_matter_errors_name_file_and_line(tmp_path: Path, front: str, line: int, fragment: str) -> None:
    path = write_issue(tmp_path, front)
    with pytest.raises(IssueError) as caught:
        read_issue(path)
    assert caught.value.line == line
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_unknown_key_error_lists_the_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(IssueError) as caught:
        read_issue(write_issue(tmp_path, "subject: S\nauthor: me"))
    for key in ALLOWED_KEYS:
        assert key in caught.value.message


def test_missing_front_matter_and_unclosed_front_matter(tmp_path: Path) -> None:
    plain = tmp_path / "plain.md"
    plain.write_text("# Just markdown\n")
    with pytest.raises(IssueError, match="must start with YAML front matter"):
        read_issue(plain)
    unclosed = tmp_path / "unclosed.md"
    unclosed.write_text("---\nsubject: S\n\nbody\n")
    with pytest.raises(IssueError, match="never closed"):
        read_issue(unclosed)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(IssueError, match="not found"):
        read_issue(tmp_path / "nope.md")
    latin = tmp_path / "latin.md"
    latin.write_bytes("---\nsubject: caf\xe9\n---\n".encode("latin-1"))
    with pytest.raises(IssueError, match="not UTF-8"):
        read_issue(latin)


def test_only_line_under_a_heading_limits_that_section(tmp_path: Path) -> None:
    body = 'Intro\n\n## North news\n{only: branch == "North"}\n\nMeeting on Tuesday.\n\n## Everyone\nText\n'
    path = write_issue(tmp_path, "subject: S", body)
    issue = read_issue(path)
    north, everyone = issue.sections
    assert north.only is not None and north.only.source == 'branch == "North"'
    assert "only" not in north.body and "Meeting on Tuesday." in north.body
    assert everyone.only is None
    lines = path.read_text().splitlines()
    assert lines[issue.conditional_parts()[0].line - 1] == '{only: branch == "North"}'


def test_only_on_events_and_highlights(tmp_path: Path) -> None:
    front = (
        "subject: S\nhighlights:\n  - text: North news\n    only: branch == 'North'\n  - Everyone\n"
        "events:\n  - date: 2026-12-08\n    title: Meeting\n    only: \"'Diary' in topics\"\n"
    )
    issue = read_issue(write_issue(tmp_path, front, "## North news\n\nx\n\n## Everyone\n\ny\n"))
    assert [p.part for p in issue.conditional_parts()] == ["event:0", "highlight:0"]
    assert issue.highlights[0].anchor == "north-news" and issue.highlights[1].only is None


@pytest.mark.parametrize(
    ("front", "body", "line", "said"),
    [
        ("subject: S", "## A\n{only: branch ==}\n", 5, "only: expected"),
        ("subject: S", "## A\n{only: len(x)}\n", 5, "only:"),
        ("subject: S", "## A\n\n{only: branch == 'x'}\n", 6, "directly under"),
        ("subject: S", "{only: branch == 'x'}\n## A\n", 4, "directly under"),
        ("subject: S\nevents:\n  - date: 2026-12-08\n    title: M\n    only: 'a b'", "", 6, "only: expected"),
        ("subject: S\nevents:\n  - date: 2026-12-08\n    title: M\n    only: [1]", "", 6, "must be a condition"),
        ("subject: S\nhighlights:\n  - text: A\n    when: x", "", 5, "unknown highlight key 'when'"),
        ("subject: S\nhighlights:\n  - text: A\n    only: a ==", "", 5, "only: expected"),
        ("subject: S", "Intro\n\n[Go](https://example.org){.button only: branch ==}\n", 6, "only: expected"),
        ("subject: S", "## A\n\nx\n\n[Go](https://e.org){.button only: branch.upper()}\n", 8, "only: cannot read"),
        ("subject: S", "## A\n\nJust words {.button only: branch == 'x'}\n", 6, "goes at the end of a button"),
    ],
)
def test_bad_conditions_are_errors_at_their_line(front: str, body: str, line: int, said: str, tmp_path: Path) -> None:
    with pytest.raises(IssueError) as caught:
        read_issue(write_issue(tmp_path, front, body))
    assert caught.value.line == line and said in caught.value.message


def test_for_variant_leaves_out_what_the_variant_does_not_show(tmp_path: Path) -> None:
    from newsletter_mailer.compose.variants import Segmenter, Variant

    front = "subject: S\nhighlights: auto"
    body = "## North\n{only: branch == 'North'}\nn\n\n## South\n{only: branch == 'South'}\ns\n\n## All\na\n"
    issue = read_issue(write_issue(tmp_path, front, body))
    segmenter = Segmenter(issue.conditional_parts())
    north = segmenter.variant_of({"branch": "north"})
    assert north == Variant(frozenset({"section:0"}))
    assert segmenter.variant_of({"branch": "North "}) == north
    assert segmenter.variant_of({"branch": "north"}) is north  # decided once per distinct cell
    assert [s.title for s in issue.for_variant(north).sections] == ["North", "All"]
    assert [s.title for s in issue.for_variant(Variant()).sections] == ["All"]


SEED_HIGHLIGHTS = [
    ("hear from our guest about cleaning up the river at the speaker meeting on Thursday", "Speaker meeting"),
    ("suggest who we should invite to speak next year", "Speakers for next year"),
    ("add your name to the winter letter-writing evening", "Letter-writing evening"),
    ("ask the council to keep the library open on Saturdays", "Library hours"),
    ("pick up a poster for your window or noticeboard", "Posters"),
    ("find out how to move your savings to an ethical bank", "Ethical banking"),
    ("learn to answer the usual questions about volunteering", "Talking about volunteering"),
    ("help a family settle in with the welcome team", "Welcome team"),
    ("write to the mayor about the bus route cuts", "Bus routes"),
    ("back the campaign for safer crossings near schools", "Safer crossings"),
    ("come to the launch of the repair cafe on 5 and 7 March", "Repair cafe"),
    ("meet the ward councillors at the open surgery", "Ward councillors"),
    ("join the new team that visits schools", "School visits"),
    ("volunteer for the photos and posts team", "Photos and posts team"),
    ("buy cards and gifts at the charity stall", "The charity stall"),
    ("book a place on the online first-aid course on 12 March", "First-aid course"),
    ("walk with us on the spring litter pick", "Litter pick"),
    ("read our round-up of the month's work", "Round-up"),
]


def seed_issue(folder: Path, items: list[str]) -> Path:
    """The seed's shape: 18 highlights that are phrases, not headings, and a section for each."""
    body = "Welcome.\n\n" + "".join(f"## {heading}\n\nMore about it.\n\n" for _, heading in SEED_HIGHLIGHTS)
    return write_issue(folder, "subject: November\nhighlights:\n" + "".join(items), body)


def newsletter_check(folder: Path) -> list[str]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "check", "issue.md"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "highlight" in line]


def test_phrase_highlights_are_one_warning_listing_them(tmp_path: Path) -> None:
    seed_issue(tmp_path, [f'  - "{text}"\n' for text, _ in SEED_HIGHLIGHTS])
    warnings = newsletter_check(tmp_path)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("issue.md:3: warning: 18 highlights match no section heading, so they link nowhere")
    assert all(f"line {4 + i}: " in warnings[0] for i in range(18))
    assert "`- text → Heading`" in warnings[0]


def test_a_highlight_names_its_section_with_an_arrow_or_a_mapping(tmp_path: Path) -> None:
    arrows = [f'  - "{text} → {heading}"\n' for text, heading in SEED_HIGHLIGHTS[:9]]
    ascii_arrow = [f"  - {text.replace(chr(39), '')} -> {heading}\n" for text, heading in SEED_HIGHLIGHTS[9:12]]
    mappings = [f'  - text: "{text}"\n    section: {heading}\n' for text, heading in SEED_HIGHLIGHTS[12:]]
    path = seed_issue(tmp_path, arrows + ascii_arrow + mappings)
    assert newsletter_check(tmp_path) == []
    issue = read_issue(path)
    assert [h.text for h in issue.highlights][:2] == [SEED_HIGHLIGHTS[0][0], SEED_HIGHLIGHTS[1][0]]
    assert [h.anchor for h in issue.highlights] == [s.anchor for s in issue.sections]
    assert [h.line for h in issue.highlights][11:14] == [15, 16, 18]  # a mapping's line is its first
    from newsletter_mailer.compose.render import render_issue
    from newsletter_mailer.config import load_settings

    html = render_issue(issue, load_settings(workspace=tmp_path)).html
    assert 'href="#speaker-meeting"' in html and "→" not in html and "Speaker meeting</a>" not in html


def test_a_named_section_no_heading_has_is_a_warning_at_its_line(tmp_path: Path) -> None:
    seed_issue(tmp_path, ['  - "the speaker meeting → Speakr meeting"\n', "  - text: Posters\n    section: Nowhere\n"])
    warnings = newsletter_check(tmp_path)
    assert warnings == [
        "issue.md:4: warning: highlight names section 'Speakr meeting', which no ## heading is; "
        "did you mean 'Speaker meeting'?",
        "issue.md:5: warning: highlight names section 'Nowhere', which no ## heading is; the headings: "
        + ", ".join(repr(h) for _, h in SEED_HIGHLIGHTS),
    ]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("  - text: A\n    where: B\n", "issue.md:5: unknown highlight key 'where'; allowed: text, section"),
        ("  - section: Posters\n", "issue.md:4: a highlight given as a mapping needs its text"),
        ("  - [a, b]\n", "issue.md:4: each highlight is a line of text"),
    ],
)
def test_a_malformed_highlight_is_an_error_at_its_line(tmp_path: Path, item: str, fragment: str) -> None:
    seed_issue(tmp_path, [item])
    with pytest.raises(IssueError) as raised:
        read_issue(tmp_path / "issue.md")
    assert fragment in str(raised.value)


def test_only_on_a_button_limits_that_button(tmp_path: Path) -> None:
    from newsletter_mailer.compose.variants import Segmenter

    body = (
        'Intro\n\n[Join North](https://example.org/north){.button only: branch == "North"}\n\n## All\n\nText\n\n'
        "[Give](https://example.org/give){.button only: branch in ['South', 'East']}\n\n"
        "[Everyone](https://example.org/all){.button}\n"
    )
    path = write_issue(tmp_path, "subject: S", body)
    issue = read_issue(path)
    parts = issue.conditional_parts()
    assert [(p.part, p.label) for p in parts] == [("button:0", "button 'Join North'"), ("button:1", "button 'Give'")]
    lines = path.read_text().splitlines()
    assert [lines[p.line - 1].split("{")[0] for p in parts] == [
        "[Join North](https://example.org/north)",
        "[Give](https://example.org/give)",
    ]
    segmenter = Segmenter(parts)
    south = issue.for_variant(segmenter.variant_of({"branch": "south"}))
    assert "Join North" not in south.intro and "Give" in south.sections[0].body and "only" not in south.sections[0].body
    north = issue.for_variant(segmenter.variant_of({"branch": "North"}))
    assert "[Join North](https://example.org/north){.button}" in north.intro and "Give" not in north.sections[0].body
    assert "Everyone" in north.sections[0].body and north.sections[0].body.count("\n") == issue.sections[0].body.count(
        "\n"
    )
