"""Merge fields: ``{{ subscriber.name }}`` in an issue becomes a placeholder at render time and a
value per recipient, escaped for where it lands, without rendering MJML or premailer again.

A placeholder is ``nlm<nonce>x<n>x``: lowercase letters and digits only, so Markdown, MJML,
premailer, HTML escaping and quoted-printable all leave it alone.
"""

from __future__ import annotations

import enum
import functools
import html
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context as Context_
from jinja2.sandbox import SandboxedEnvironment

from ..audience.links import preferences_url_for
from ..audience.subscribers import column_key
from ..errors import IssueError, MergeFieldError
from .bidi import isolate

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SPACED = re.compile(r"^\s*subscriber\s*\.\s*(\w+(?: +\w+)+)\s*(?:\|.*)?$", re.DOTALL)
_STATEMENT = re.compile(r"\{%.*?%\}", re.DOTALL)

UNSUBSCRIBE_URL = "unsubscribe_url"
EMAIL = "email"
PREFERENCES_URL = "preferences_url"
FIXED_SLOTS = 3  # the unsubscribe URL, the address, the preferences URL; editors' expressions follow


class Context(enum.Enum):
    """Where a value lands, which decides how it is escaped."""

    HTML = "html"  # HTML text: the value in its own <span dir="auto">
    HTML_PLAIN = "html_plain"  # a quoted attribute or <title>, where no markup can go
    HTML_URL = "html_url"  # a whole href/src value
    HTML_URL_PART = "html_url_part"  # part of an href/src value (a query parameter)
    TEXT = "text"  # the plain-text part: verbatim
    TEXT_URL_PART = "text_url_part"  # inside a URL in the plain-text part


_SAFE_SCHEME = re.compile(r"(https?:|mailto:)", re.IGNORECASE)  # compiled once: it runs per recipient


def safe_url(value: str) -> str:
    return value if _SAFE_SCHEME.match(value) else ""


def html_isolated(value: str) -> str:
    """A value in HTML text, in an element of its own with ``dir="auto"``: a right-to-left name
    keeps its place in "Dear NAME, 3 new events" whatever the paragraph's direction."""
    return f'<span dir="auto">{html.escape(value, quote=True)}</span>'


ESCAPERS: dict[Context, Callable[[str], str]] = {
    Context.HTML: html_isolated,
    Context.HTML_PLAIN: lambda v: html.escape(isolate(v), quote=True),
    Context.HTML_URL: lambda v: html.escape(safe_url(v), quote=True),
    Context.HTML_URL_PART: lambda v: html.escape(quote(v, safe=""), quote=True),
    Context.TEXT: isolate,
    Context.TEXT_URL_PART: lambda v: quote(v, safe=""),
}


MAX_BUILT = 100_000  # characters, items or bits an expression may ask for: a name, not a book
MAX_OUTPUT = 1_000_000  # characters one filter, method or merge field may build
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")


def _too_big(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_BUILT


def _size(value: object, depth: int = 0) -> int:
    """Characters a value stands for: a string's length, a container's contents (a list of one
    long string repeated is as big as its text), 0 for numbers and other objects."""
    if isinstance(value, (str, bytes, range)):
        return len(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)) and depth < 8:
        items = list(value.items()) if isinstance(value, dict) else list(value)
        return len(items) + sum(_size(item, depth + 1) for item in items[:MAX_BUILT])
    return 0


def _format_width(template: str) -> int:
    """The characters the widths and precisions of a format string ask for, ``%099999999d`` or
    ``{:>99999999}``: counted before the string is built, as the sandbox cannot see them."""
    wanted = 0
    for width, precision in _PRINTF_SPEC.findall(template):
        wanted += sum(int(n) for n in (width, precision) if n.isdigit())
    for spec in _FORMAT_SPEC.findall(template):
        wanted += sum(int(n) for n in re.findall(r"\d+", spec))
    return wanted


def _lines_times(text: object, width: object) -> int:
    """What ``indent`` or ``expandtabs`` may build: each line or tab widened by ``width``."""
    per = width if isinstance(width, int) else _size(width)
    return _size(text) * (1 + max(per, 0)) if isinstance(text, str) else 0


def _refuse_amplifiers(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call that would build more than MAX_OUTPUT characters, before it builds them: a
    number past MAX_BUILT; a format string whose widths ask for more than MAX_BUILT; or two
    inputs whose sizes multiply past MAX_OUTPUT (``replace``, ``join``, ``urlize``, ``wordwrap``
    and the like put one input into the other as often as it fits)."""
    values = (*args, *kwargs.values())
    if any(_too_big(value) for value in values):
        raise OverflowError(f"a number over {MAX_BUILT} is too large for a merge field")
    strings = [value for value in values if isinstance(value, str)]
    if name in ("format", "format_map") and strings and _format_width(strings[0]) > MAX_BUILT:
        raise OverflowError("the widths in this format string are too large for a merge field")
    if (
        name in ("indent", "expandtabs")
        and args
        and _lines_times(args[0], values[1] if len(values) > 1 else 8) > MAX_OUTPUT
    ):
        raise OverflowError("the indented value is too large for a merge field")
    sizes = sorted((_size(value) for value in values), reverse=True)
    if len(sizes) > 1 and sizes[0] * max(sizes[1], 1) > MAX_OUTPUT:
        raise OverflowError("the value this would build is too large for a merge field")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, which stops attribute tricks and huge ranges but not ``{{ "x" * 10**9 }}``,
    ``"x".ljust(10**9)``, ``"x"|center(10**9)`` or ``"%099999999d"|format(1)``: each of those
    would take gigabytes before any check could look at the result. Repetition, powers, format
    widths and every call or filter that would build past the bounds are refused instead
    (``_refuse_amplifiers``), and a merge field's value is at most MAX_OUTPUT characters."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded(name, function) for name, function in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        powers = operator == "**" and isinstance(left, int) and isinstance(right, int)
        if powers and right > 0 and abs(left) > 1 and right * abs(left).bit_length() > MAX_BUILT:
            raise OverflowError(f"{left} ** {right} is too large for a merge field")
        if operator == "*":
            sizes = [_size(x) for x in (left, right) if isinstance(x, (str, list, tuple))]
            counts = [x for x in (left, right) if isinstance(x, int)]
            if sizes and counts and max(sizes[0], 1) * counts[0] > MAX_BUILT:
                raise OverflowError("the repeated value is too large for a merge field")
        if operator == "%" and isinstance(left, str):
            _refuse_amplifiers("format", (left, right), {})
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format and format_map
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "") if isinstance(owner, str) else ""
        _refuse_amplifiers(name, (owner, *args) if name else args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _bounded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps Jinja's pass_context/pass_environment markers
    def checked(*args: Any, **kwargs: Any) -> Any:
        # A generator (``map``, ``select``) is measured as the list it would be: ranges are bounded.
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
        plain = tuple(a for a in args if not isinstance(a, (Context_, EvalContext, Environment)))
        _refuse_amplifiers(name, plain, kwargs)
        return function(*args, **kwargs)

    return checked


@dataclass
class MergeFields:
    """Collects the merge expressions of one issue and hands out their placeholders.

    Slot 0 is the recipient's unsubscribe URL, slot 1 their address and slot 2 their preferences
    page (made from the unsubscribe URL: the same token); editors' expressions follow.
    """

    nonce: str = field(default_factory=lambda: secrets.token_hex(4))
    sources: list[str] = field(default_factory=list)
    origins: list[tuple[str, int]] = field(default_factory=list)  # (file, line) where each first appears
    columns: list[frozenset[str]] = field(default_factory=list)  # the subscriber.X each one names
    _compiled: list[Callable[..., Any]] = field(default_factory=list)
    _env: SandboxedEnvironment = field(default_factory=lambda: BoundedSandbox(autoescape=False))

    def __post_init__(self) -> None:
        self._pattern = re.compile(rf"nlm{self.nonce}x(\d+)x")
        for name in (UNSUBSCRIBE_URL, EMAIL, PREFERENCES_URL):
            self._add(name, ("", 0))

    def _add(self, source: str, origin: tuple[str, int]) -> int:
        source = source.strip()
        if source in self.sources:
            return self.sources.index(source)
        compiled = self._env.compile_expression(source, undefined_to_none=False)
        tree = self._env.parse(f"{{{{ {source} }}}}")
        _refuse_private(tree, source, origin)
        self.sources.append(source)
        self.origins.append(origin)
        self.columns.append(_columns_named(tree))
        self._compiled.append(_fast_path(source) or compiled)
        return len(self.sources) - 1

    def placeholder(self, index: int) -> str:
        return f"nlm{self.nonce}x{index}x"

    @property
    def unsubscribe_url(self) -> str:
        return self.placeholder(0)

    @property
    def preferences_url(self) -> str:
        return self.placeholder(2)

    @property
    def pattern(self) -> re.Pattern[str]:
        return self._pattern

    def substitute(self, text: str, *, file: Path, line: int) -> str:
        """Replace each ``{{ expr }}`` in ``text`` by its placeholder. ``line`` is text's first line."""
        statement = _STATEMENT.search(text)
        if statement:
            at = line + text.count("\n", 0, statement.start())
            raise IssueError(
                f"only {{{{ ... }}}} merge fields are allowed, not {statement.group(0)!r}", file=file, line=at
            )

        def replace(match: re.Match[str]) -> str:
            at = line + text.count("\n", 0, match.start())
            try:
                return self.placeholder(self._add(match.group(1), (str(file), at)))
            except TemplateSyntaxError as exc:
                spaced = _SPACED.match(match.group(1))
                reason = exc.message or "not an expression"
                if spaced:  # {{ subscriber.First Name }}: Jinja says "chunk after expression"
                    reason = f"a column name with spaces is written with `_`: subscriber.{column_key(spaced.group(1))}"
                raise IssueError(f"merge field {match.group(0)!r} is not valid: {reason}", file=file, line=at) from None

        return _EXPRESSION.sub(replace, text)

    def values(self, subscriber: Mapping[str, str], unsubscribe_url: str) -> list[str]:
        """Every slot's value for one recipient, unescaped."""
        present = {k: v for k, v in subscriber.items() if v}
        out = [unsubscribe_url, subscriber.get("email", ""), preferences_url_for(unsubscribe_url)]
        try:
            for compiled in self._compiled[FIXED_SLOTS:]:
                value = "" if (result := compiled(subscriber=present)) is None else str(result)
                if len(value) > MAX_OUTPUT:
                    raise OverflowError(f"the value is over {MAX_OUTPUT} characters, too large for a merge field")
                out.append(value)
        except Exception as exc:  # any error of an editor's expression is the editor's to fix
            raise self._failed(len(out), exc) from None
        return out

    def _failed(self, index: int, exc: Exception) -> MergeFieldError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, ZeroDivisionError):
            reason = "division by zero"
        reason = reason.replace("'dict object' has no attribute", "this row has no value for")
        file, line = self.origins[index]
        return MergeFieldError(
            f"merge field {{{{ {self.sources[index]} }}}} cannot be filled: {reason}", file=file, line=line
        )

    def named_columns(self) -> list[tuple[str, tuple[str, int], frozenset[str]]]:
        """Each editor's expression, where it is, and the subscriber columns it names."""
        return [(s, o, c) for s, o, c in zip(self.sources, self.origins, self.columns, strict=True)][FIXED_SLOTS:]

    def render_plain(self, text: str, values: list[str]) -> str:
        """Fill placeholders in text verbatim (for previews)."""
        return self._pattern.sub(lambda m: values[int(m.group(1))], text)

    def render_header(self, text: str, values: list[str]) -> str:
        """Fill placeholders in a header's text, each right-to-left value isolated (FSI ... PDI)."""
        return self._pattern.sub(lambda m: isolate(values[int(m.group(1))]), text)


_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


def _refuse_private(tree: nodes.Template, source: str, origin: tuple[str, int]) -> None:
    """``''.__class__`` and the like: the sandbox would quietly make them empty; say so instead."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(getattr(node, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise IssueError(
                f"merge field {{{{ {source} }}}} is not allowed: {name!r} is not open to merge fields",
                file=origin[0],
                line=origin[1],
            )


def _is_subscriber(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "subscriber"


def _columns_named(tree: nodes.Template) -> frozenset[str]:
    """``x`` of every ``subscriber.x`` and ``subscriber["x"]`` in an expression."""
    names = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and _is_subscriber(node.node) and node.attr not in _DICT_METHODS:
            names.add(node.attr)
        elif isinstance(node, nodes.Getitem) and _is_subscriber(node.node) and isinstance(node.arg, nodes.Const):
            names.add(str(node.arg.value))
    return frozenset(names)


_SIMPLE = re.compile(r"""^subscriber\.(\w+)(?:\s*\|\s*default\(\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\))?$""")


def _fast_path(source: str) -> Callable[..., Any] | None:
    """``subscriber.x`` and ``subscriber.x | default("...")`` without a Jinja context per call
    (most issues use only these; the result is the same as Jinja's, tested side by side)."""
    match = _SIMPLE.match(source)
    if match is None:
        return None
    key = match.group(1)
    fallback = match.group(2) if match.group(2) is not None else (match.group(3) or "")

    def value(subscriber: Mapping[str, str]) -> str:
        return subscriber.get(key, fallback)

    return value


def html_contexts(markup: str, pattern: re.Pattern[str]) -> Iterable[tuple[re.Match[str], Context]]:
    """Each placeholder in final HTML with its context, read from the markup around it."""
    # Text inside <title> is shown as is, markup and all: its values are isolated without a span.
    titles = [m.span(1) for m in re.finditer(r"<title\b[^>]*>(.*?)</title\s*>", markup, re.IGNORECASE | re.DOTALL)]
    for match in pattern.finditer(markup):
        start = match.start()
        if markup.rfind("<", 0, start) > markup.rfind(">", 0, start):
            tag = markup[markup.rfind("<", 0, start) : start]
            attr = re.search(r"([\w:-]+)\s*=\s*([\"']?)([^\"']*)$", tag)
            if attr and attr.group(1).lower() in ("href", "src", "action", "background"):
                whole = attr.group(3) == ""
                yield match, Context.HTML_URL if whole else Context.HTML_URL_PART
                continue
            yield match, Context.HTML_PLAIN
        elif any(first <= start < last for first, last in titles):
            yield match, Context.HTML_PLAIN
        else:
            yield match, Context.HTML


def text_contexts(text: str, pattern: re.Pattern[str]) -> Iterable[tuple[re.Match[str], Context]]:
    """Each placeholder in the plain-text part: inside a URL it is percent-encoded."""
    for match in pattern.finditer(text):
        word_start = max(text.rfind(c, 0, match.start()) for c in " \n\t<") + 1
        word = text[word_start : match.start()]
        in_url = bool(re.match(r"^(https?:|mailto:)\S", word))
        yield match, Context.TEXT_URL_PART if in_url else Context.TEXT
