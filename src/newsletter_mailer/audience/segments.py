"""Conditions over a list's columns: who sees a section, an event, a highlight or a button, and
who a ``send --where`` reaches. A rule about readers, so it lives with the other rules about
readers (audience/), and both compose/ (what a reader sees) and app/ (whom a send reaches) use it.

The language is parsed by hand, never evaluated by Python or Jinja: names are list columns,
values are the text in a row's cell, and nothing else can be reached.

    condition := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | term
    term      := "(" or ")" | operand [("==" | "!=") operand | ["not"] "in" (list | NAME)]
    operand   := NAME | STRING | NUMBER
    list      := "[" [operand ("," operand)*] "]"

A NAME alone is true when the reader's cell is not empty. ``x in NAME`` is true when ``x`` is
one of the comma- or semicolon-separated items of that cell (``"Diary" in topics``). Names and
text compare without regard to case or surrounding space; a number compares as a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import ConditionError

__all__ = ["MAX_CONDITION_CHARS", "Condition", "cell_items", "column_key", "parse_condition"]

MAX_CONDITION_CHARS = 1000  # a condition names a few columns; a longer one is a mistake
MAX_DEPTH = 32  # parentheses and "not"s nested deeper than this are refused, not recursed into

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\\n]|\\["\\])*"|'(?:[^'\\\n]|\\['\\])*')
    | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
    | (?P<name>[^\W\d]\w*)
    | (?P<op>==|!=|[()\[\],])
    )""",
    re.VERBOSE,
)
_HINT = 'a condition compares columns with quoted text or numbers: branch == "North", not phone, "Diary" in topics'
_KEYWORDS = frozenset({"and", "or", "not", "in"})

Values = Mapping[str, str]
Test = Callable[[Values], bool]


def column_key(header: str) -> str:
    """A column's name in conditions and merge fields: lower case, spaces and punctuation as ``_``."""
    return re.sub(r"[^\w]+", "_", header.strip().lower()).strip("_")


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, name, op, keyword, end
    text: str
    at: int  # character offset, for the error message


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(source):
        if not source[position:].strip():
            break
        match = _TOKEN.match(source, position)
        if match is None:
            rest = source[position:].lstrip()
            at = len(source) - len(rest) + 1
            raise ConditionError(f"cannot read {rest[:20]!r} at character {at}: {_HINT}")
        kind = match.lastgroup or "op"
        text, at = match.group(kind), match.start(kind) + 1
        if kind == "name" and text.lower() in _KEYWORDS:
            kind, text = "keyword", text.lower()
        out.append(_Token(kind, text, at))
        position = match.end()
    out.append(_Token("end", "", len(source) + 1))
    return out


@dataclass(frozen=True)
class _Operand:
    """A column or a literal; ``value`` gives its text for one reader."""

    column: str = ""
    literal: str = ""
    number: float | None = None

    def value(self, row: Values) -> str:
        return (row.get(self.column) or "").strip() if self.column else self.literal


def _same(left: _Operand, right: _Operand, row: Values) -> bool:
    number = left.number if left.number is not None else right.number
    a, b = left.value(row), right.value(row)
    if number is not None:
        try:
            return float(a) == float(b)
        except ValueError:
            return False
    return a.casefold() == b.casefold()


def cell_items(text: str) -> tuple[str, ...]:
    """The items of a list cell ("Diary; Local news", "Diary, Campaigns"), as ``in COLUMN`` reads them."""
    return tuple(item.strip() for item in re.split(r"[,;]", text) if item.strip())


def _items(text: str) -> set[str]:
    return {item.casefold() for item in cell_items(text)}


class _Parser:
    """Recursive descent over the token list; every mistake is a ConditionError."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0
        self.depth = 0
        self.columns: set[str] = set()
        self.members: set[tuple[str, str]] = set()  # ("topics", "Diary") for '"Diary" in topics'

    @property
    def next(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def accept(self, kind: str, text: str) -> bool:
        if self.next.kind == kind and self.next.text == text:
            self.take()
            return True
        return False

    def fail(self, wanted: str) -> ConditionError:
        token = self.next
        found = "the end" if token.kind == "end" else repr(token.text)
        return ConditionError(f"expected {wanted} at character {token.at}, found {found}")

    def parse(self) -> Test:
        test = self.disjunction()
        if self.next.kind != "end":
            raise self.fail("'and', 'or' or the end")
        return test

    def nested(self, parse: Callable[[], Test]) -> Test:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested more than {MAX_DEPTH} deep")
        try:
            return parse()
        finally:
            self.depth -= 1

    def disjunction(self) -> Test:
        parts = [self.conjunction()]
        while self.accept("keyword", "or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Test:
        parts = [self.negation()]
        while self.accept("keyword", "and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def negation(self) -> Test:
        if self.accept("keyword", "not"):
            inner = self.nested(self.negation)
            return lambda row: not inner(row)
        return self.term()

    def term(self) -> Test:
        if self.accept("op", "("):
            inner = self.nested(self.disjunction)
            if not self.accept("op", ")"):
                raise self.fail("')'")
            return inner
        left = self.operand()
        if self.next.kind == "op" and self.next.text in ("==", "!="):
            equal = self.take().text == "=="
            right = self.operand()
            return lambda row: _same(left, right, row) == equal
        negated = self.next.kind == "keyword" and self.next.text == "not" and self._in_follows()
        if negated:
            self.take()
        if self.accept("keyword", "in"):
            member = self.membership(left)
            return (lambda row: not member(row)) if negated else member
        if not left.column:
            raise self.fail("'==', '!=' or 'in' after a value")
        return lambda row: bool(left.value(row))

    def _in_follows(self) -> bool:
        following = self.tokens[min(self.index + 1, len(self.tokens) - 1)]
        return following.kind == "keyword" and following.text == "in"

    def membership(self, left: _Operand) -> Test:
        if self.accept("op", "["):
            options: list[_Operand] = []
            while not self.accept("op", "]"):
                if options and not self.accept("op", ","):
                    raise self.fail("',' or ']'")
                options.append(self.operand())
            return lambda row: any(_same(left, option, row) for option in options)
        if self.next.kind == "name":
            column = self.operand()
            if not left.column:
                self.members.add((column.column, left.literal))
            return lambda row: left.value(row).casefold() in _items(column.value(row))
        raise self.fail('a list like ["a", "b"] or a column name after \'in\'')

    def operand(self) -> _Operand:
        token = self.take()
        if token.kind == "name":
            key = column_key(token.text)
            self.columns.add(key)
            return _Operand(column=key)
        if token.kind == "string":
            return _Operand(literal=re.sub(r"\\(.)", r"\1", token.text[1:-1]).strip())
        if token.kind == "number":
            return _Operand(literal=token.text, number=float(token.text))
        self.index -= 1 if token.kind != "end" else 0
        raise self.fail("a column name, a quoted text or a number")


@dataclass(frozen=True, eq=False)
class Condition:
    """A parsed condition: its source (as written), the columns it names, and its test;
    ``members``: the (column, text) of each ``"text" in column``, for ``check`` to hold a topic
    to those offered."""

    source: str
    columns: frozenset[str]
    _test: Test
    members: frozenset[tuple[str, str]] = frozenset()

    def __call__(self, row: Values) -> bool:
        """Whether a reader with these cells (column key -> text) matches."""
        return self._test(row)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def parse_condition(source: str) -> Condition:
    """Parse a condition; raises ConditionError (with the character where it went wrong)."""
    source = source.strip()
    if not source:
        raise ConditionError("the condition is empty")
    if len(source) > MAX_CONDITION_CHARS:
        raise ConditionError(f"the condition is {len(source)} characters long; at most {MAX_CONDITION_CHARS}")
    parser = _Parser(source)
    test = parser.parse()
    return Condition(source, frozenset(parser.columns), test, frozenset(parser.members))
