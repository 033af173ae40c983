"""Variants: the versions of one issue that readers fall into. A reader's variant is the set of
conditional parts (``{only: ...}`` on a section, an event, a highlight, a button) they see; each
variant is rendered and MIME-encoded once, and every reader of it gets that one filled in.

``Variant`` is the cache key. It is a small frozen value on purpose: per-reader languages add a
``language`` field to it, and every cache keyed by it keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..audience.segments import Condition
from ..audience.subscribers import DERIVED_COLUMNS

__all__ = ["ConditionalPart", "Segmenter", "Variant"]


@dataclass(frozen=True, order=True)
class Variant:
    """Which conditional parts of an issue a reader sees (by part id: ``section:2``, ``event:0``,
    ``highlight:1``, ``button:3``). The empty set: no part with a condition is shown."""

    visible: frozenset[str] = field(default_factory=frozenset)

    def shows(self, part: str) -> bool:
        return part in self.visible

    def describe(self, names: Mapping[str, str]) -> str:
        """In words, for a dry run and ``check``: the conditional parts it shows."""
        shown = sorted(names.get(part, part) for part in self.visible)
        return "with " + ", ".join(shown) if shown else "without any conditional part"


@dataclass(frozen=True)
class ConditionalPart:
    """One part of an issue that only some readers see."""

    part: str  # its id in a Variant
    label: str  # how a person recognises it: 'section "North branch"'
    condition: Condition
    line: int  # where the condition is written in the issue file


class Segmenter:
    """Decides a reader's variant from their cells. Each condition is evaluated once per distinct
    combination of the cells it reads, not once per message: a list of 20,000 readers in four
    branches evaluates it four times, and every other reader is a dictionary look-up."""

    def __init__(self, parts: Sequence[ConditionalPart]) -> None:
        self.parts = tuple(parts)
        self.columns = tuple(sorted({c for p in self.parts for c in p.condition.columns}))
        self._known: dict[tuple[str, ...], Variant] = {}

    @property
    def all_parts(self) -> frozenset[str]:
        """Every conditional part: the variant a test copy without ``--as`` shows."""
        return frozenset(p.part for p in self.parts)

    @property
    def names(self) -> dict[str, str]:
        return {p.part: p.label for p in self.parts}

    def variant_of(self, cells: Mapping[str, str]) -> Variant:
        """The variant of a reader whose cells (column key -> text) are ``cells``."""
        if not self.parts:
            return _PLAIN
        key = tuple((cells.get(column) or "").strip() for column in self.columns)
        known = self._known.get(key)
        if known is None:
            row = dict(zip(self.columns, key, strict=True))
            known = Variant(frozenset(p.part for p in self.parts if p.condition(row)))
            self._known[key] = known
        return known

    def unknown_columns(self, columns: Sequence[str]) -> list[ConditionalPart]:
        """The parts whose condition names a column the list does not have."""
        have = set(columns) | DERIVED_COLUMNS
        return [p for p in self.parts if not p.condition.columns <= have]


_PLAIN = Variant()

VariantOf = Callable[[Mapping[str, str]], Variant]
