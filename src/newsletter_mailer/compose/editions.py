"""An issue's messages for every variant: each variant readers fall into is rendered (Jinja, MJML,
premailer) and MIME-encoded once, the first time one of its readers comes; every reader of it then
costs a fill, as with an issue without conditions.

An issue without conditional parts has one variant, and its message is the one built from the
rendering the check saw: nothing is rendered twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..audience.subscribers import Subscriber
from ..config import Settings
from .envelope import Envelope, MessageTemplate
from .render import RenderedIssue, render_issue
from .translations import ByLanguage, rendered_translations
from .variants import Segmenter, Variant

__all__ = ["Editions", "VariantCount", "count_variants", "each_language"]

MAX_ROWS_REMEMBERED = 200_000  # distinct rows whose variant is kept; past it the memo starts again
TemplateMaker = Callable[[RenderedIssue], MessageTemplate]


@dataclass(frozen=True)
class VariantCount:
    """How many readers get one variant, what it shows, and its HTML's size."""

    variant: Variant
    readers: int
    shows: str
    html_bytes: int


class Editions:
    """The rendered issue and message of each variant, made on first use and kept."""

    def __init__(self, rendered: RenderedIssue, settings: Settings, make: TemplateMaker) -> None:
        self.full = rendered  # every part shown: what ``check`` looks at
        self.settings = settings
        self.make = make
        self.segmenter = Segmenter(rendered.issue.conditional_parts())
        self._rendered: dict[Variant, RenderedIssue] = {}
        self._templates: dict[Variant, MessageTemplate] = {}
        self._only = None if self.segmenter.parts else make(rendered)
        # The memo is keyed by the row's fields; a condition on a value from outside them (the
        # address, the name, a first_name made from the name) keys it by those too.
        self._identity = bool({"email", "name", "first_name"} & set(self.segmenter.columns))
        self._rows: dict[object, Variant] = {}

    def rendered(self, variant: Variant) -> RenderedIssue:
        """The issue as the readers of ``variant`` see it, rendered once."""
        if not self.segmenter.parts:
            return self.full
        done = self._rendered.get(variant)
        if done is None:
            done = self._rendered[variant] = render_issue(
                self.full.issue.for_variant(variant), self.settings, language=self.full.language
            )
        return done

    def template(self, variant: Variant) -> MessageTemplate:
        """The encoded message of ``variant``, built once."""
        if self._only is not None:
            return self._only
        built = self._templates.get(variant)
        if built is None:
            built = self._templates[variant] = self.make(self.rendered(variant))
        return built

    def variant_of(self, subscriber: Subscriber) -> Variant:
        """A reader's variant: looked up by their row's cells (one hash of a tuple the row already
        holds), decided by the segmenter the first time such a row comes."""
        key: object = (subscriber.fields, subscriber.email, subscriber.name) if self._identity else subscriber.fields
        known = self._rows.get(key)
        if known is None:
            if len(self._rows) >= MAX_ROWS_REMEMBERED:
                self._rows.clear()
            known = self._rows[key] = self.segmenter.variant_of(subscriber.merge_values())
        return known

    def envelope(self, subscriber: Subscriber, row: int = 0) -> Envelope:
        """The message for one reader, from their variant's template."""
        if self._only is not None:
            return self._only.envelope(subscriber, row)
        return self.template(self.variant_of(subscriber)).envelope(subscriber, row)

    def prepare(self, variants: Iterable[Variant]) -> None:
        """Build the messages of these variants now (before a send starts, not at its first reader)."""
        for variant in variants:
            self.template(variant)

    def counts(self, tally: Counter[Variant]) -> list[VariantCount]:
        """Each variant in ``tally`` with its readers and its size, the most read first."""
        names = self.segmenter.names
        return [
            VariantCount(variant, readers, variant.describe(names), self.rendered(variant).html_bytes)
            for variant, readers in sorted(tally.items(), key=lambda item: (-item[1], sorted(item[0].visible)))
        ]


def count_variants(segmenter: Segmenter, subscribers: Iterable[Subscriber]) -> Counter[Variant]:
    """How many of these readers fall into each variant."""
    return Counter(segmenter.variant_of(s.merge_values()) for s in subscribers)


def each_language(editions: Editions) -> ByLanguage[Editions]:
    """The issue's editions in its main language and in each translation beside it, each made by
    the same maker: a reader's copy chosen from their ``language`` cell, as a send chooses it."""
    others = rendered_translations(editions.full.issue, editions.settings)
    return ByLanguage(editions, {key: Editions(r, editions.settings, editions.make) for key, r in others.items()})
