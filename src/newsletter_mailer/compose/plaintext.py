"""The plain-text part, written from the Markdown source rather than scraped from the HTML.

Lines wrap at 76 columns and never break a URL; links become numbered references listed under
the section they appear in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from markdown_it.token import Token

from . import markup

WIDTH = 76


def wrap(text: str, indent: str = "", hanging: str | None = None, width: int = WIDTH) -> str:
    """Wrap a paragraph; words longer than the width (URLs) stay whole on their own line."""
    wrapper = textwrap.TextWrapper(
        width=width,
        initial_indent=indent,
        subsequent_indent=indent if hanging is None else hanging,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(wrapper.fill(line) if line.strip() else "" for line in text.split("\n"))


def view_online(url: str, gettext: Callable[[str], str] = str) -> str:
    """The text part's link to the issue's public page (the same for every reader), its words
    through the language's ``gettext``."""
    label = gettext("View in your browser:")
    return f"{label} {url}"


def underline(title: str, char: str) -> str:
    return f"{title}\n{char * min(len(title), WIDTH)}"


@dataclass
class TextWriter:
    """Renders Markdown blocks to text; link numbers run through the whole message."""

    links: list[str] = field(default_factory=list)
    gettext: Callable[[str], str] = str  # the language's catalogue (i18n.py); English as written
    _pending: list[tuple[int, str]] = field(default_factory=list)

    def ref(self, url: str) -> int:
        self.links.append(url)
        number = len(self.links)
        self._pending.append((number, url))
        return number

    def take_references(self) -> str:
        refs = "\n".join(f"[{n}] {url}" for n, url in self._pending)
        self._pending.clear()
        return refs

    def inline(self, token: Token) -> str:
        out: list[str] = []
        href_stack: list[tuple[str, int]] = []
        for child in token.children or []:
            kind = child.type
            if kind in ("text", "code_inline"):
                out.append(child.content)
            elif kind == "softbreak":
                out.append(" ")
            elif kind == "hardbreak":
                out.append("\n")
            elif kind == "link_open":
                href_stack.append((str(child.attrs.get("href", "")), len(out)))
            elif kind == "link_close" and href_stack:
                href, start = href_stack.pop()
                label = "".join(out[start:]).strip()
                bare = href.removeprefix("mailto:")
                if href and label not in (href, bare):
                    out.append(f" [{self.ref(href)}]")
            elif kind == "image":
                alt = child.content.strip() or self.gettext("image")
                out.append(f"[{alt}]")
        return "".join(out).strip()

    def blocks(self, source: str, width: int = WIDTH) -> str:
        """Text of a Markdown fragment, its link references at the end."""
        tokens = markup.parse(source)
        chunks: list[str] = []
        self._walk(tokens, 0, len(tokens), chunks, width)
        body = "\n\n".join(c for c in chunks if c.strip())
        refs = self.take_references()
        return f"{body}\n\n{refs}" if refs else body

    def _walk(self, tokens: list[Token], start: int, end: int, chunks: list[str], width: int) -> None:
        i = start
        while i < end:
            token = tokens[i]
            kind = token.type
            if kind == "paragraph_open":
                inline = tokens[i + 1]
                button = markup.as_button(inline)
                image = markup.as_image(inline, 0)
                if button is not None:
                    text = f"» {button.label} [{self.ref(button.href)}]"
                elif image is not None:
                    said = image.alt or self.gettext("no description")
                    text = self.gettext("[Image: %(alt)s]") % {"alt": said}
                    if image.caption:  # its own line: run on, alt text and caption read as one sentence
                        text += f"\n{image.caption}"
                else:
                    text = self.inline(inline)
                chunks.append(wrap(text, width=width))
                i = self._close(tokens, i) + 1
            elif kind == "heading_open":
                title = self.inline(tokens[i + 1])
                chunks.append(underline(title, "=" if token.tag == "h1" else "~"))
                i = self._close(tokens, i) + 1
            elif kind in ("bullet_list_open", "ordered_list_open"):
                close = self._close(tokens, i)
                number = int(token.attrs.get("start", 1) or 1)
                items: list[str] = []
                j = i + 1
                while j < close:
                    if tokens[j].type != "list_item_open":
                        j += 1
                        continue
                    item_close = self._close(tokens, j)
                    marker = "- " if kind == "bullet_list_open" else f"{number}. "
                    number += 1
                    inner: list[str] = []
                    self._walk(tokens, j + 1, item_close, inner, width - len(marker))
                    items.append(_prefix("\n".join(inner), marker, " " * len(marker)))
                    j = item_close + 1
                chunks.append("\n".join(items))
                i = close + 1
            elif kind == "blockquote_open":
                close = self._close(tokens, i)
                inner = []
                self._walk(tokens, i + 1, close, inner, width - 2)
                chunks.append(_prefix("\n\n".join(inner), "> ", "> "))
                i = close + 1
            elif kind in ("fence", "code_block"):
                chunks.append(_prefix(token.content.rstrip("\n"), "    ", "    "))
                i += 1
            elif kind == "hr":
                chunks.append("* * *")
                i += 1
            else:
                i += 1

    @staticmethod
    def _close(tokens: list[Token], i: int) -> int:
        """Index of the token closing the one at i."""
        opening = tokens[i]
        if opening.nesting != 1:
            return i
        depth = 0
        for j in range(i, len(tokens)):
            depth += tokens[j].nesting
            if depth == 0:
                return j
        return len(tokens) - 1


def _prefix(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    out = [first + lines[0]] + [(rest + line) if line else rest.rstrip() for line in lines[1:]]
    return "\n".join(out)
