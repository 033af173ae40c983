"""Translations of an issue: ``issues/2026-12.fr.md`` and ``issues/2026-12.ar.md`` beside the main
``issues/2026-12.md``, each with its own front matter and body, and what ``check`` says about
them: per language, the sections, events, buttons and highlights a translation lacks or adds
against the main file (matched by position, events by date and time, since titles differ), and
how many readers each language reaches, a reader whose language has no translation counted
under the main one.

This is the part of per-reader languages (issue 23) that needs no send machinery; rendering one
message per language belongs with the variants' cache key (``Variant``, on branch wt-segments).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from ..audience.subscribers import Subscriber
from ..config import Settings
from . import markup
from .envelope import Envelope
from .issue import Event, Issue, Section, read_issue
from .render import RenderedIssue, render_issue

__all__ = ["ByLanguage", "Filler", "Translation", "differences", "reach", "rendered_translations", "translations_of"]

_TAG = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$", re.IGNORECASE)


@dataclass(frozen=True)
class Translation:
    language: str  # as in the file name: "fr", "pt-BR"
    path: Path


def translations_of(main: Path) -> list[Translation]:
    """The files ``<stem>.<tag>.md`` beside ``<stem>.md``, by language tag."""
    found = []
    for path in sorted(main.parent.glob(f"{main.stem}.*.md")):
        tag = path.name[len(main.stem) + 1 : -len(".md")]
        if _TAG.match(tag):
            found.append(Translation(tag, path))
    return found


def _buttons(section: Section) -> list[str]:
    return [b.label for b in markup.to_blocks(section.body, section.line + 1) if isinstance(b, markup.ButtonBlock)]


def _when(event: Event) -> str:
    return f"{event.date.isoformat()} {event.time}".strip()


_URL = re.compile(r"\]\(\s*<?([^\s)>]+)")


def _fingerprint(section: Section) -> tuple[str, ...]:
    """What a section links to (links, buttons, images): the same in every language."""
    return tuple(_URL.findall(section.body))


def _pairs(main: Issue, other: Issue) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Sections of the two files matched by what they link to, in order (titles are translated):
    the pairs, the main file's sections left over (missing) and the translation's (extra)."""
    ours = [_fingerprint(s) for s in main.sections]
    theirs = [_fingerprint(s) for s in other.sections]
    pairs: list[tuple[int, int]] = []
    missing: list[int] = []
    extra: list[int] = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, ours, theirs, autojunk=False).get_opcodes():
        if op == "equal" or (op == "replace" and a1 - a0 == b1 - b0):
            pairs += zip(range(a0, a1), range(b0, b1), strict=True)
        else:
            missing += range(a0, a1)
            extra += range(b0, b1)
    return pairs, missing, extra


def _sections(main: Issue, other: Issue) -> list[tuple[int, str]]:
    """(line, message) for each section missing or extra, and each button missing or extra."""
    pairs, missing, extra = _pairs(main, other)
    found: list[tuple[int, str]] = []
    for n in missing:
        section = main.sections[n]
        found.append((0, f"missing section {n + 1} of {len(main.sections)}: {section.title!r} (line {section.line})"))
    for n in extra:
        section = other.sections[n]
        found.append((section.line, f"extra section {section.title!r}, which the main file does not have"))
    for a, b in pairs:
        ours, theirs = main.sections[a], other.sections[b]
        want, have = _buttons(ours), _buttons(theirs)
        if len(want) > len(have):
            lost = ", ".join(repr(label) for label in want[len(have) :])
            found.append((theirs.line, f"section {theirs.title!r} lacks a button the main file has: {lost}"))
        elif len(have) > len(want):
            found.append((theirs.line, f"section {theirs.title!r} has {len(have) - len(want)} button(s) more"))
    return found


def differences(main: Issue, other: Issue) -> list[tuple[int, str]]:
    """What a translation lacks or adds against the main file, each with the translation's line
    (0 when it is about something absent)."""
    found = _sections(main, other)
    theirs = {_when(e) for e in other.events}
    ours = {_when(e) for e in main.events}
    for event in main.events:
        if _when(event) not in theirs:
            found.append((0, f"missing event on {_when(event)}: {event.title!r} (line {event.line})"))
    for event in other.events:
        if _when(event) not in ours:
            found.append((event.line, f"extra event on {_when(event)}, which the main file does not have"))
    if len(main.highlights) != len(other.highlights):
        found.append(
            (
                other.line_of("highlights"),
                f"{len(other.highlights)} highlights, the main file has {len(main.highlights)}",
            )
        )
    return found


def reach(languages: Iterable[str], main_language: str, translated: Iterable[str]) -> list[str]:
    """One line per language: how many readers get which version. ``languages`` holds each
    reader's language cell ("" for none); a reader whose language has no translation gets the
    main file, and is said so."""
    available = {t.strip().lower().replace("_", "-").split("-", 1)[0] for t in translated}
    main = main_language.lower()
    counts: Counter[tuple[str, str]] = Counter()
    for cell in languages:
        tag = cell.strip().lower().replace("_", "-")
        primary = tag.split("-", 1)[0]
        if not tag or primary == main.split("-", 1)[0]:
            counts[(main, "")] += 1
        elif primary in available:
            counts[(primary, "")] += 1
        else:
            counts[(main, primary)] += 1
    lines = []
    for (language, wanted), count in sorted(counts.items()):
        readers = f"{count} reader{'s' if count != 1 else ''}"
        if wanted:
            lines.append(f"{wanted}: {readers}, no translation: they get the main file ({language})")
        else:
            lines.append(f"{language}: {readers}")
    return lines


def rendered_translations(main: Issue, settings: Settings) -> dict[str, RenderedIssue]:
    """Each translation rendered once, in its own language, under the main file's journal key
    (a reader has one row per issue, whichever version they get)."""
    found = {}
    for translation in translations_of(main.path):
        if _primary(translation.language) == _primary(settings.newsletter.language):
            continue  # "2026-12.en.md" beside an English issue: its readers get the main file, as counted
        issue = dataclasses.replace(read_issue(translation.path), path=main.path)
        found[_primary(translation.language)] = render_issue(issue, settings, language=translation.language)
    return found


def _primary(tag: str) -> str:
    return tag.strip().lower().replace("_", "-").split("-", 1)[0]


class Filler(Protocol):
    """A message filled per reader: a MessageTemplate, or the editions of an issue's variants."""

    def envelope(self, subscriber: Subscriber, row: int = 0) -> Envelope: ...


F = TypeVar("F", bound=Filler)


class ByLanguage(Generic[F]):
    """One message template per language, each built once; a reader's is chosen from their
    ``language`` cell when their row is claimed. A reader with no cell, or whose language has no
    translation, gets the main file. Per recipient this costs one dictionary look-up."""

    def __init__(self, main: F, others: Mapping[str, F]) -> None:
        self.main = main
        self.others = others
        self._known: dict[str, F] = {}  # a cell as written -> its template

    def for_reader(self, subscriber: Subscriber) -> F:
        for key, cell in subscriber.fields:
            if key == "language":
                known = self._known.get(cell)
                if known is None:
                    known = self._known[cell] = self.others.get(_primary(cell), self.main) if cell else self.main
                return known
        return self.main

    def envelope(self, subscriber: Subscriber, row: int = 0) -> Envelope:
        return self.for_reader(subscriber).envelope(subscriber, row)
