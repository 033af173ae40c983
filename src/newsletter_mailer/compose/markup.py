"""Markdown to email blocks: HTML fragments, call-to-action buttons and images.

A paragraph holding only ``[label](url){.button}`` is a button; a paragraph holding only an
image is a full-width image with its caption. Everything else stays HTML for an ``mj-text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

_BUTTON_MARK = re.compile(r"^\s*\{\.button\}\s*$")


@dataclass(frozen=True)
class HtmlBlock:
    html: str


@dataclass(frozen=True)
class ButtonBlock:
    href: str
    label: str  # plain text


@dataclass(frozen=True)
class ImageBlock:
    src: str
    alt: str
    caption: str
    line: int


Block = HtmlBlock | ButtonBlock | ImageBlock


@dataclass(frozen=True)
class LinkRef:
    """A link or image found in the source, for the checker."""

    url: str
    text: str
    line: int
    kind: str  # "link", "image", "button"


# Outlook for Windows honours padding only on table cells, so a quote's indent and bar live on
# a cell around the <blockquote> (classes the template styles and premailer inlines).
_QUOTE_OPEN = (
    '<table class="quote" role="presentation" border="0" cellpadding="0" cellspacing="0" width="100%">'
    '<tr><td class="quote-bar"><blockquote>\n'
)
_QUOTE_CLOSE = "</blockquote></td></tr></table>\n"


def _quote_open(*_: Any) -> str:
    return _QUOTE_OPEN


def _quote_close(*_: Any) -> str:
    return _QUOTE_CLOSE


def new_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"typographer": False})
    md.add_render_rule("blockquote_open", _quote_open)
    md.add_render_rule("blockquote_close", _quote_close)
    return md


_MD = new_parser()


def parse(source: str) -> list[Token]:
    return _MD.parse(source)


def _meaningful(children: list[Token]) -> list[Token]:
    return [
        c
        for c in children
        if not (c.type in ("softbreak", "hardbreak") or (c.type == "text" and not c.content.strip()))
    ]


def as_button(inline: Token) -> ButtonBlock | None:
    children = inline.children or []
    kids = _meaningful(children)
    if (
        len(kids) >= 3
        and kids[0].type == "link_open"
        and kids[-2].type == "link_close"
        and kids[-1].type == "text"
        and _BUTTON_MARK.match(kids[-1].content)
    ):
        label = "".join(c.content for c in kids[1:-2] if c.type in ("text", "code_inline"))
        return ButtonBlock(href=str(kids[0].attrs.get("href", "")), label=label.strip())
    return None


def as_image(inline: Token, line: int) -> ImageBlock | None:
    kids = _meaningful(inline.children or [])
    if len(kids) == 1 and kids[0].type == "image":
        image = kids[0]
        return ImageBlock(
            src=str(image.attrs.get("src", "")),
            alt=image.content.strip(),
            caption=str(image.attrs.get("title") or ""),
            line=line,
        )
    return None


def to_blocks(source: str, first_line: int = 1) -> list[Block]:
    """Split rendered Markdown into blocks. ``first_line`` is the source's line in the file."""
    tokens = parse(source)
    blocks: list[Block] = []
    pending: list[Token] = []

    def flush() -> None:
        if pending:
            rendered = _MD.renderer.render(pending, _MD.options, {}).strip()
            if rendered:
                blocks.append(HtmlBlock(rendered))
            pending.clear()

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if (
            token.type == "paragraph_open"
            and token.level == 0
            and i + 2 < len(tokens)
            and tokens[i + 1].type == "inline"
        ):
            inline = tokens[i + 1]
            line = first_line + (token.map[0] if token.map else 0)
            special: Block | None = as_button(inline) or as_image(inline, line)
            if special is not None:
                flush()
                blocks.append(special)
                i += 3
                continue
        pending.append(token)
        i += 1
    flush()
    return blocks


def parse_inline(source: str) -> Token:
    """One line of Markdown as a single inline token."""
    return _MD.parseInline(source)[0]


def render_inline(source: str) -> str:
    """One line of Markdown (a highlight, an event title) to inline HTML."""
    rendered: str = _MD.renderInline(source)
    return rendered.strip()


def references(source: str, first_line: int = 1) -> list[LinkRef]:
    """Every link, image and button in the source with its file line."""
    found: list[LinkRef] = []
    for token in parse(source):
        if token.type != "inline":
            continue
        line = first_line + (token.map[0] if token.map else 0)
        button = as_button(token)
        children: list[Any] = token.children or []
        for n, child in enumerate(children):
            if child.type == "link_open":
                label = []
                for after in children[n + 1 :]:
                    if after.type == "link_close":
                        break
                    if after.type in ("text", "code_inline"):
                        label.append(after.content)
                found.append(
                    LinkRef(
                        str(child.attrs.get("href", "")), "".join(label).strip(), line, "button" if button else "link"
                    )
                )
            elif child.type == "image":
                found.append(LinkRef(str(child.attrs.get("src", "")), child.content.strip(), line, "image"))
            line += child.type in ("softbreak", "hardbreak")
    return found
