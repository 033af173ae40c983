"""Merge-field slips that Jinja accepts but that go out wrong to every reader: a name without
``subscriber.`` (empty, or the ``default``), braces that do not pair (sent as typed, or a stray
``}``), single-brace look-alikes, and a column name with a space. Each is found in the issue's
own text, at its line, with a "did you mean" built from the list's columns.

Jinja's own parser finds the names an expression uses (``jinja2.meta``); only the pairing of
braces needs a small tokenizer of its own, because Jinja never sees a field it cannot find.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from jinja2 import Environment, TemplateSyntaxError, meta

from ..audience.subscribers import column_key
from .merge import EMAIL, UNSUBSCRIBE_URL

__all__ = ["Slip", "find_slips", "suggest_column"]

Level = Literal["error", "warning"]
_ENV = Environment(autoescape=False)  # parsing only: nothing is rendered with it
_TOKENS = re.compile(r"\{\{|\}\}|\{%|\{|\}")
_LOOK_ALIKE = re.compile(r"(?<![{\w$])\{\s*([^{}\n]{1,80}?)\s*\}(?!\})")
_SUBSCRIBER_ATTR = re.compile(r"^subscriber\s*\.\s*(\w[\w ]*?)\s*(?:\|.*)?$", re.DOTALL)
# The bare names a merge field may be on its own: the recipient's unsubscribe link and address.
WHOLE_NAMES = frozenset({UNSUBSCRIBE_URL, EMAIL})


@dataclass(frozen=True)
class Slip:
    """One slip, at the file line where it is."""

    line: int
    level: Level
    message: str


def suggest_column(name: str, columns: Sequence[str]) -> str:
    """The column a slip most likely meant: the name as a column key if the list has it, else the
    closest column (difflib), else the key itself when the list is not known."""
    key = column_key(name) or name
    if not columns or key in columns:
        return key
    close = difflib.get_close_matches(key, columns, n=1, cutoff=0.6)
    return close[0] if close else ""


def _did_you_mean(name: str, columns: Sequence[str]) -> str:
    guess = suggest_column(name, columns)
    if guess:
        return f"did you mean `subscriber.{guess}`?"
    return f"the list's columns: {', '.join(columns)}"


@dataclass
class _Scan:
    """The merge fields of one text (their inner spans) and the brace problems found on the way."""

    text: str
    fields: list[tuple[int, int]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def run(self) -> _Scan:
        opened, depth = -1, 0
        for match in _TOKENS.finditer(self.text):
            token, at = match.group(), match.start()
            if opened < 0:
                opened = self._outside(token, at, match.end())
                depth = 0
            elif token == "{":
                depth += 1
            elif token == "}" and depth:
                depth -= 1
            elif token == "}}" or (token == "}" and depth == 0) or token in ("{{", "{%"):
                opened = self._inside(token, at, match.end(), opened)
        if opened >= 0:
            self.problems.append((opened - 2, "`{{` is never closed with `}}`: the field would be sent as typed"))
        return self

    def _outside(self, token: str, at: int, end: int) -> int:
        """A token outside any field; the inner start of a field it opens, or -1."""
        if token == "{{":
            if self.text.startswith("{", end):
                self.problems.append((at, "`{{{` has one brace too many: a merge field is `{{ subscriber.name }}`"))
                return end + 1
            return end
        if token == "}}":
            self.problems.append((at, "`}}` closes no merge field (one `{` missing?): write `{{ subscriber.name }}`"))
        elif token == "{%":
            self.problems.append((at, "`{%` is not allowed: merge fields are `{{ ... }}` only"))
        return -1

    def _inside(self, token: str, at: int, end: int, opened: int) -> int:
        """A token that ends the open field (well or badly); the inner start of a field it opens, or -1."""
        if token == "}}":
            self.fields.append((opened, at))
            if self.text.startswith("}", end):
                self.problems.append((end, "`}}}` leaves a stray `}` after the merge field: close it with `}}`"))
            return -1
        if token == "}":
            inner = self.text[opened:at].strip()
            self.problems.append((opened - 2, f"`{{{{ {inner} }}` closes with one brace: write `{{{{ {inner} }}}}`"))
            return -1
        self.problems.append((opened - 2, f"`{{{{` is not closed before the next `{token}`"))
        return end if token == "{{" else -1


def _expression_slips(expression: str, columns: Sequence[str]) -> list[tuple[Level, str]]:
    """Names other than ``subscriber`` (and the two whole-field names), and syntax errors."""
    shown = f"{{{{ {expression} }}}}"
    try:
        tree = _ENV.parse(shown)
    except TemplateSyntaxError as exc:
        spaced = _SUBSCRIBER_ATTR.match(expression)
        if spaced and " " in spaced.group(1):
            hint = _did_you_mean(spaced.group(1), columns)
            return [("error", f"merge field {shown}: a column name with spaces is written with `_`; {hint}")]
        return [("error", f"merge field {shown} is not valid: {exc.message}")]
    allowed = {"subscriber"} | ({expression} & WHOLE_NAMES)
    found: list[tuple[Level, str]] = []
    for name in sorted(meta.find_undeclared_variables(tree) - allowed):
        hidden = " (its `default` would go to every reader)" if "default" in expression else ""
        found.append(
            (
                "error",
                f"merge field {shown}: `{name}` is empty for every reader{hidden}: merge fields name "
                f"`subscriber.COLUMN`; {_did_you_mean(name, columns)}",
            )
        )
    return found


def _look_alikes(scan: _Scan, columns: Sequence[str]) -> Iterable[tuple[int, str]]:
    """``{ subscriber.x }`` and ``{first_name}`` (a column) outside any field: sent as typed."""
    for match in _LOOK_ALIKE.finditer(scan.text):
        if any(start - 2 <= match.start() < end + 2 for start, end in scan.fields):
            continue
        inner = match.group(1)
        attr = _SUBSCRIBER_ATTR.match(inner)
        named = attr.group(1) if attr else inner
        known = columns or ("email", "name")  # every list has these two
        if attr is None and (column_key(inner) not in known or not re.fullmatch(r"[\w ]+", inner)):
            continue
        guess = suggest_column(named, columns) or column_key(named)
        yield (
            match.start(),
            f"`{match.group(0)}` has one brace each side, so it is sent as typed: "
            + (f"did you mean `{{{{ subscriber.{guess} }}}}`?"),
        )


def find_slips(sources: Iterable[tuple[str, int]], columns: Sequence[str] = ()) -> list[Slip]:
    """Every slip in the issue's texts, each given with the file line it starts on; ``columns``
    are the list's merge names (empty when no list is known)."""
    slips: list[Slip] = []
    for text, first_line in sources:
        if "{" not in text and "}" not in text:
            continue
        scan = _Scan(text).run()

        def line(offset: int, text: str = text, first_line: int = first_line) -> int:
            return first_line + text.count("\n", 0, max(offset, 0))

        slips += [Slip(line(at), "error", message) for at, message in scan.problems]
        for start, end in scan.fields:
            slips += [Slip(line(start), lv, m) for lv, m in _expression_slips(text[start:end].strip(), columns)]
        slips += [Slip(line(at), "warning", message) for at, message in _look_alikes(scan, columns)]
    return sorted(slips, key=lambda s: s.line)
