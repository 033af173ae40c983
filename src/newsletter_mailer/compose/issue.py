"""Read an issue file (YAML front matter + CommonMark body) into a plain ``Issue``.

Every error names the file and the line: editors fix what they can find.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml
from markdown_it import MarkdownIt

from ..audience.segments import Condition, parse_condition
from ..errors import ConditionError, IssueError, IssueNotFound, IssueProblems
from . import markup
from .variants import ConditionalPart, Variant

ALLOWED_KEYS = ("subject", "preheader", "date", "highlights", "events", "signoff")
EVENT_KEYS = ("date", "time", "title", "where", "contact", "link", "only")
_ONLY_LINE = re.compile(r"^\s*\{\s*only\s*:(.*)\}\s*$")
T = TypeVar("T")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab and line ends, and DEL
MAX_NESTING = 20
_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: a date stays text until we parse it, so an
    impossible one (2026-13-01) is an error at its line rather than PyYAML's ValueError."""

    yaml_implicit_resolvers = {  # noqa: RUF012  (a class attribute, as PyYAML reads it)
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class Problems:
    """Front-matter errors gathered as parsing goes on, raised together at the end."""

    def __init__(self) -> None:
        self.errors: list[IssueError] = []

    def add(self, error: IssueError) -> None:
        self.errors.append(error)

    def attempt(self, parse: Callable[[], T], fallback: T) -> T:
        """The parsed value, or ``fallback`` with the error noted."""
        try:
            return parse()
        except IssueError as exc:
            self.errors.append(exc)
            return fallback

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise IssueProblems(sorted(self.errors, key=lambda e: e.line or 0))


_TIME = re.compile(r"^([01]?\d|2[0-3])[:.][0-5]\d(\s*[-–]\s*([01]?\d|2[0-3])[:.][0-5]\d)?$")


@dataclass(frozen=True)
class Event:
    date: dt.date
    title: str
    time: str = ""
    where: str = ""
    contact: str = ""
    link: str = ""
    line: int = 0
    only: Condition | None = None  # who sees it; None: everyone
    only_line: int = 0


@dataclass(frozen=True)
class Highlight:
    text: str
    anchor: str  # the id of the section it links to, or ""
    line: int = 0
    section: str = ""  # the section it names (``section:`` or ``→ Heading``), as written; "" if none
    only: Condition | None = None


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    body: str
    line: int  # line of the heading in the file
    only: Condition | None = None  # from a ``{only: ...}`` line directly under the heading


@dataclass(frozen=True)
class Button:
    """A button only some readers see (``[label](url){.button only: ...}``), in the introduction
    (``section`` -1) or a section; ``offset``: its last line's offset in that text."""

    section: int
    offset: int
    line: int  # in the file
    label: str
    only: Condition


@dataclass(frozen=True)
class Issue:
    path: Path
    subject: str
    preheader: str
    date: dt.date | None
    highlights: tuple[Highlight, ...]
    events: tuple[Event, ...]
    signoff: str
    intro: str
    intro_line: int
    sections: tuple[Section, ...]
    source: str
    key_lines: tuple[tuple[str, int], ...] = ()
    signoff_line: int = 2
    buttons: tuple[Button, ...] = ()

    def line_of(self, key: str) -> int:
        """The file line of a front-matter key (line 2, the first key, when absent)."""
        return dict(self.key_lines).get(key, 2)

    @property
    def key(self) -> str:
        """Names this issue in the journal: the file's stem."""
        return self.path.stem

    def conditional_parts(self) -> tuple[ConditionalPart, ...]:
        """Every part that only some readers see, with its id in a Variant."""
        parts = [
            ConditionalPart(f"section:{i}", f"section {s.title!r}", s.only, s.line + 1)
            for i, s in enumerate(self.sections)
            if s.only is not None
        ]
        parts += [
            ConditionalPart(f"event:{i}", f"event {e.title!r}", e.only, e.only_line or e.line)
            for i, e in enumerate(self.events)
            if e.only is not None
        ]
        parts += [
            ConditionalPart(f"highlight:{i}", f"highlight {h.text!r}", h.only, h.line)
            for i, h in enumerate(self.highlights)
            if h.only is not None
        ]
        parts += [
            ConditionalPart(f"button:{i}", f"button {b.label!r}", b.only, b.line) for i, b in enumerate(self.buttons)
        ]
        return tuple(parts)

    def for_variant(self, variant: Variant) -> Issue:
        """The issue as the readers of ``variant`` see it: the parts they do not see left out."""

        def shown(kind: str, index: int, only: Condition | None) -> bool:
            return only is None or variant.shows(f"{kind}:{index}")

        gone = [b for i, b in enumerate(self.buttons) if not variant.shows(f"button:{i}")]
        sections = tuple(
            replace(s, body=_without_buttons(s.body, [b for b in gone if b.section == i]))
            for i, s in enumerate(self.sections)
            if shown("section", i, s.only)
        )
        hidden = {s.anchor for s in self.sections} - {s.anchor for s in sections}
        # A highlight that links to a section the reader does not get is about that section: it goes too.
        highlights = tuple(
            h for i, h in enumerate(self.highlights) if shown("highlight", i, h.only) and h.anchor not in hidden
        )
        events = tuple(e for i, e in enumerate(self.events) if shown("event", i, e.only))
        intro = _without_buttons(self.intro, [b for b in gone if b.section < 0])
        return replace(self, intro=intro, sections=sections, highlights=highlights, events=events)


def _without_buttons(text: str, buttons: list[Button]) -> str:
    """The text with these buttons' paragraphs blanked (every other line keeps its number)."""
    if not buttons:
        return text
    lines = text.split("\n")
    for button in buttons:
        start = button.offset
        while start > 0 and lines[start - 1].strip():
            start -= 1
        for n in range(start, button.offset + 1):
            lines[n] = ""
    return "\n".join(lines)


def slugify(text: str) -> str:
    """An ASCII anchor name: Outlook and Gmail compare ``<a name>`` byte for byte with the
    link's fragment, which they may have percent-encoded, so accents are dropped (café -> cafe)."""
    plain = re.sub(r"[*_`\[\]()!]", "", text).lower()
    ascii_text = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "section"


def _split_front_matter(text: str, file: Path) -> tuple[str, str, int]:
    """Return (yaml text, body, line number where the body starts)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise IssueError(
            "the file must start with YAML front matter between '---' lines (at least a subject)", file=file, line=1
        )
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise IssueError("the front matter opened on line 1 is never closed with '---'", file=file, line=1)


def _unknown_keys(
    mapping: dict[Any, Any],
    allowed: tuple[str, ...],
    label: str,
    lines: dict[str, int],
    default_line: int,
    file: Path,
    problems: Problems,
) -> None:
    """Each key that is not allowed, at its own line, with the keys that are."""
    for key in mapping:
        if key not in allowed:
            message = f"unknown {label} {key!r}; allowed{' keys' if label == 'key' else ''}: {', '.join(allowed)}"
            problems.add(IssueError(message, file=file, line=lines.get(str(key), default_line)))


def _mapping_lines(node: yaml.Node) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 2 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _parse_date(value: Any, label: str, file: Path, line: int) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise IssueError(f"{label} must be an ISO date like 2026-11-18, not {value!r}", file=file, line=line) from None


def _text(value: Any, label: str, file: Path, line: int) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        control = _CONTROL.search(text)
        if control:  # "\0" in a quoted YAML string: no mail header or template may carry it
            code = f"U+{ord(control.group()):04X}"
            raise IssueError(f"{label} contains a control character ({code}): remove it", file=file, line=line)
        return text
    raise IssueError(f"{label} must be text, not {type(value).__name__}", file=file, line=line)


def _condition(value: Any, file: Path, line: int) -> Condition:
    """An ``only:`` condition, or an IssueError at its line saying what is wrong with it."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise IssueError('only: must be a condition like branch == "North"', file=file, line=line)
    try:
        return parse_condition(str(value))
    except ConditionError as exc:
        raise IssueError(f"only: {exc.message}", file=file, line=line) from None


def _too_deep(front: str, path: Path) -> None:
    """Refuse front matter nested past MAX_NESTING before PyYAML composes it: its composer
    recurses once per level, and 5,000 levels are a RecursionError. Counted on the scanner's
    tokens, which are read without recursion; a scanner error is left to the real parse."""
    depth = 0
    try:
        for token in yaml.scan(front, Loader=yaml.SafeLoader):
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_NESTING:
                    raise IssueError(
                        f"front matter nests more than {MAX_NESTING} levels deep: an issue needs a few",
                        file=path,
                        line=token.start_mark.line + 2,
                    )
            elif isinstance(token, _CLOSES):
                depth -= 1
    except yaml.YAMLError:
        return


def _events(value: Any, node: yaml.Node | None, file: Path, line: int, problems: Problems) -> tuple[Event, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
        raise IssueError("events must be a list of events, each with at least date and title", file=file, line=line)
    events = []
    for item, item_node in zip(value, node.value, strict=True):
        event = problems.attempt(partial(_event, item, item_node, file, problems), None)
        if event is not None:
            events.append(event)
    return tuple(sorted(events, key=lambda e: (e.date, e.time)))


def _event(item: Any, item_node: yaml.Node, file: Path, problems: Problems) -> Event | None:
    """One diary entry; every problem in it is noted, and None returned if there was any."""
    at = item_node.start_mark.line + 2
    if not isinstance(item, dict):
        raise IssueError(
            f"each event must be a mapping with date, title and optional {', '.join(EVENT_KEYS[2:])}",
            file=file,
            line=at,
        )
    before = len(problems.errors)
    lines = _mapping_lines(item_node)
    _unknown_keys(item, EVENT_KEYS, "event key", lines, at, file, problems)
    for required in ("date", "title"):
        if not item.get(required):
            problems.add(IssueError(f"event is missing {required!r}", file=file, line=at))

    def text(key: str) -> str:
        return problems.attempt(lambda: _text(item.get(key), f"event {key}", file, lines.get(key, at)), "")

    time = text("time")
    if time and not _TIME.match(time):
        problems.add(
            IssueError(
                f"event time must look like 19:30 or 18:00-19:30, not {time!r}", file=file, line=lines.get("time", at)
            )
        )
    date = None
    if item.get("date"):
        date = problems.attempt(lambda: _parse_date(item["date"], "event date", file, lines.get("date", at)), None)
    fields = {key: text(key) for key in ("title", "where", "contact", "link")}
    only_line = lines.get("only", at)
    only = problems.attempt(lambda: _condition(item["only"], file, only_line), None) if "only" in item else None
    if len(problems.errors) > before or date is None:
        return None
    return Event(date=date, time=time.replace(".", ":"), line=at, only=only, only_line=only_line, **fields)


def _split_sections(body: str, body_line: int) -> tuple[str, int, list[tuple[str, str, int]]]:
    """Split on level-2 headings as CommonMark sees them (not inside code blocks)."""
    md = MarkdownIt("commonmark")
    tokens = md.parse(body)
    lines = body.splitlines(keepends=True)
    starts: list[tuple[int, str]] = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2" and token.map:
            starts.append((token.map[0], tokens[i + 1].content.strip()))
    intro_end = starts[0][0] if starts else len(lines)
    intro = "".join(lines[:intro_end])
    sections = []
    for n, (start, title) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        sections.append((title, "".join(lines[start + 1 : end]), body_line + start))
    return intro, body_line, sections


def parse_issue_text(text: str, path: Path) -> Issue:
    """Parse an issue's text; ``path`` names it in errors and gives its key."""
    front, body, body_line = _split_front_matter(text.replace("\r\n", "\n"), path)
    _too_deep(front, path)
    loader = _Loader(front)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        context = getattr(exc, "context_mark", None)
        if context is not None and (mark is None or mark.line >= front.count("\n")):
            mark = context  # an error at the end of the text belongs where the construct opened
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise IssueError(f"front matter is not valid YAML: {problem}", file=path, line=line) from None
    except ValueError as exc:  # a date YAML reads as one but the calendar has not: 2027-02-30
        raise _impossible_date(loader, node, path, exc) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IssueError("front matter must be a mapping of keys (subject: ...)", file=path, line=2)
    key_lines = _mapping_lines(node) if node is not None else {}
    problems = Problems()
    _unknown_keys(data, ALLOWED_KEYS, "key", key_lines, 2, path, problems)
    value_nodes = {str(k.value): v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
    intro, sections, buttons = _sections(body, body_line, path, problems)
    issue = _front_matter(data, key_lines, value_nodes, sections, path, problems)
    problems.raise_any()
    return replace(issue, intro=intro, intro_line=body_line, source=text, buttons=buttons)


def _sections(
    body: str, body_line: int, file: Path, problems: Problems
) -> tuple[str, tuple[Section, ...], tuple[Button, ...]]:
    """The introduction, the sections with unique anchors and their ``{only: ...}``, and the
    buttons with a condition."""
    intro, _, raw_sections = _split_sections(body, body_line)
    _misplaced_only(intro, body_line, file, problems)
    intro, buttons = _buttons(intro, body_line, -1, file, problems)
    sections: list[Section] = []
    used: set[str] = set()
    for index, (title, section_body, line) in enumerate(raw_sections):
        anchor = base = slugify(title)
        n = 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        only, section_body = _section_only(section_body, line, file, problems)
        section_body, found = _buttons(section_body, line + 1, index, file, problems)
        buttons += found
        sections.append(Section(title=title, anchor=anchor, body=section_body, line=line, only=only))
    return intro, tuple(sections), tuple(buttons)


_BUTTON_ONLY = re.compile(r"\{\s*\.button\s+only\s*:(.*)\}\s*$")


def _buttons(text: str, first_line: int, section: int, file: Path, problems: Problems) -> tuple[str, list[Button]]:
    """Each ``{.button only: ...}``: its condition read (an error at its line if it cannot be),
    and the mark left as a plain ``{.button}`` for the renderer, which the variant may drop."""
    lines, found = text.split("\n"), []
    for offset, written in enumerate(lines):
        match = _BUTTON_ONLY.search(written)
        if match is None:
            continue
        at = first_line + offset
        lines[offset] = written[: match.start()] + "{.button}"
        only = problems.attempt(partial(_condition, match.group(1), file, at), None)
        refs = [r for r in markup.references("\n".join(lines), first_line) if r.kind == "button" and r.line <= at]
        if not refs or not written[: match.start()].rstrip().endswith(")"):
            problems.add(
                IssueError(
                    "{.button only: ...} goes at the end of a button: [label](https://...){.button only: ...}",
                    file=file,
                    line=at,
                )
            )
        elif only is not None:
            found.append(Button(section, offset, at, refs[-1].text, only))
    return "\n".join(lines), found


def _section_only(body: str, heading: int, file: Path, problems: Problems) -> tuple[Condition | None, str]:
    """The condition on the line directly under a heading, and the body without it (a blank line
    in its place, so every later line keeps its number)."""
    first, newline, rest = body.partition("\n")
    match = _ONLY_LINE.match(first)
    if match is None:
        _misplaced_only(body, heading + 1, file, problems)
        return None, body
    _misplaced_only(rest, heading + 2, file, problems)
    only = problems.attempt(lambda: _condition(match.group(1), file, heading + 1), None)
    return only, newline + rest


def _misplaced_only(text: str, first_line: int, file: Path, problems: Problems) -> None:
    """A ``{only: ...}`` line anywhere but directly under a ``##`` heading would be printed as text."""
    for offset, line in enumerate(text.split("\n")):
        if _ONLY_LINE.match(line):
            problems.add(
                IssueError(
                    "{only: ...} limits a section only on the line directly under its ## heading",
                    file=file,
                    line=first_line + offset,
                )
            )


def _front_matter(
    data: dict[Any, Any],
    key_lines: dict[str, int],
    value_nodes: dict[str, yaml.Node],
    sections: tuple[Section, ...],
    path: Path,
    problems: Problems,
) -> Issue:
    """The issue's front-matter values; each bad one is noted in ``problems`` and left empty."""

    def text(key: str) -> str:
        return problems.attempt(lambda: _text(data.get(key), key, path, key_lines.get(key, 2)), "")

    line = key_lines.get
    subject = text("subject")
    raw_subject = data.get("subject")
    if raw_subject is None or (isinstance(raw_subject, str) and not raw_subject.strip()):
        problems.add(IssueError("subject is required (the email's subject line)", file=path, line=line("subject", 2)))
    date = data.get("date")
    return Issue(
        path=path,
        subject=subject,
        preheader=text("preheader"),
        date=problems.attempt(lambda: _parse_date(date, "date", path, line("date", 2)), None) if date else None,
        highlights=problems.attempt(
            lambda: _highlights(
                data.get("highlights"), value_nodes.get("highlights"), list(sections), path, line("highlights", 2)
            ),
            (),
        ),
        events=problems.attempt(
            lambda: _events(data.get("events"), value_nodes.get("events"), path, line("events", 2), problems), ()
        ),
        signoff=text("signoff"),
        intro="",
        intro_line=0,
        sections=sections,
        source="",
        key_lines=tuple(key_lines.items()),
        signoff_line=_first_text_line(value_nodes.get("signoff")),
    )


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _impossible_date(loader: yaml.SafeLoader, node: yaml.Node | None, path: Path, exc: ValueError) -> IssueError:
    """The date in the front matter that is no day of the calendar, at its line."""
    pending = [node] if node is not None else []
    while pending:
        current = pending.pop()
        if isinstance(current, yaml.ScalarNode) and current.tag == _TIMESTAMP:
            try:
                loader.construct_yaml_timestamp(current)
            except ValueError as bad:
                return IssueError(
                    f"{current.value} is not a date on the calendar ({bad})",
                    file=path,
                    line=current.start_mark.line + 2,
                )
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            pending.extend(value for _, value in current.value)
    return IssueError(f"front matter has a value that cannot be read: {exc}", file=path, line=2)


def _first_text_line(node: yaml.Node | None) -> int:
    """The file line where a scalar's text starts: a block scalar (| or >) starts a line down."""
    if not isinstance(node, yaml.ScalarNode):
        return 2
    return node.start_mark.line + 2 + (1 if node.style in ("|", ">") else 0)


HIGHLIGHT_KEYS = ("text", "section", "only")
_ARROW = re.compile(r"\s+(?:→|->)\s+")  # the last " → " (or " -> ") ends the text


def _highlights(
    value: Any, node: yaml.Node | None, sections: list[Section], file: Path, line: int
) -> tuple[Highlight, ...]:
    """The highlights: ``auto`` (every section), or a list whose items are a line of Markdown
    (linked to the section whose heading says the same), a line ending in ``→ Heading``, or a
    mapping with ``text`` and ``section``."""
    if value is None:
        return ()
    if value == "auto":
        return tuple(Highlight(s.title, s.anchor, line) for s in sections)
    if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
        raise IssueError(
            "highlights must be a list (of short Markdown lines, or text/section mappings), or the word auto",
            file=file,
            line=line,
        )
    by_name = {slugify(s.title): s.anchor for s in sections} | {s.anchor: s.anchor for s in sections}
    return tuple(_highlight(item, item_node, by_name, file) for item, item_node in zip(value, node.value, strict=True))


def _highlight(item: Any, node: yaml.Node, by_name: dict[str, str], file: Path) -> Highlight:
    at = node.start_mark.line + 2
    if isinstance(item, dict):
        _refuse_other_keys(item, _mapping_lines(node), at, file)
        text = _text(item.get("text"), "highlight text", file, at)
        section = _text(item.get("section"), "highlight section", file, at)
        if not text:
            raise IssueError("a highlight given as a mapping needs its text: `- text: ...`", file=file, line=at)
        if "only" in item:
            only_at = _mapping_lines(node).get("only", at)
            return Highlight(
                text, by_name.get(slugify(section or text), ""), at, section, _condition(item["only"], file, only_at)
            )
    elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
        text, section = _split_arrow(str(item).strip())
    else:
        raise IssueError(
            "each highlight is a line of text, `text → Heading`, or a mapping with text and section", file=file, line=at
        )
    return Highlight(text, by_name.get(slugify(section or text), ""), at, section)


def _split_arrow(line: str) -> tuple[str, str]:
    """``text → Heading`` as (text, heading); a line without an arrow as (line, "")."""
    arrows = list(_ARROW.finditer(line))
    if not arrows:
        return line, ""
    return line[: arrows[-1].start()].strip(), line[arrows[-1].end() :].strip()


def _refuse_other_keys(item: dict[Any, Any], lines: dict[str, int], at: int, file: Path) -> None:
    for key in item:
        if key not in HIGHLIGHT_KEYS:
            raise IssueError(
                f"unknown highlight key {key!r}; allowed: {', '.join(HIGHLIGHT_KEYS)}",
                file=file,
                line=lines.get(str(key), at),
            )


def issue_key(path: Path) -> str:
    """The journal's name for an issue file, once the file is known to be there."""
    if path.is_dir():
        raise IssueNotFound("is a directory, not an issue file", file=path)
    if not path.is_file():
        raise IssueNotFound("issue file not found", file=path)
    return path.stem


MAX_ISSUE_BYTES = 5 * 1024 * 1024  # a long issue is 100 KB; more is a wrong file, refused before it is read


def read_issue(path: Path) -> Issue:
    issue_key(path)
    try:
        size = path.stat().st_size
        if size > MAX_ISSUE_BYTES:
            raise IssueError(
                f"the issue file is {size / 1024 / 1024:.0f} MB; an issue may be at most "
                f"{MAX_ISSUE_BYTES // 1024 // 1024} MB (is this the right file?)",
                file=path,
            )
        text = path.read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is not content
    except FileNotFoundError:
        raise IssueNotFound("issue file not found", file=path) from None
    except PermissionError:
        raise IssueNotFound("cannot read the issue file (permission denied)", file=path) from None
    except UnicodeDecodeError as exc:
        raise IssueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except IsADirectoryError:
        raise IssueNotFound("is a directory, not an issue file", file=path) from None
    except OSError as exc:
        raise IssueError(f"cannot read the issue file: {exc.strerror}", file=path) from None
    return parse_issue_text(text, path)
