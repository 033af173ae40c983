"""Readers' preferences in the store: every change a reader makes is kept with its consent record
(when, from which IP, what the page offered, what was chosen); the newest change of an address
is its current choice. The rules about choices are in audience/choices.py."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from ..config import Settings
from ..store.base import Store
from ..store.rows import PreferenceRow
from .choices import Choice, ReaderChoices
from .subscribers import address_key

__all__ = ["PreferenceLog", "reader_choices"]


def _topics(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        loaded = json.loads(text)
    except ValueError:
        return None
    return tuple(str(t) for t in loaded) if isinstance(loaded, list) else None


class PreferenceLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def current(self, address: str) -> Choice | None:
        row = self.store.current_preference(address)
        return Choice(_topics(row.topics), row.paused_until) if row else None

    def record(self, address: str, choice: Choice, *, offered: Sequence[str], ip: str, source: str) -> float:
        """Keep a reader's change and what they were shown; returns when it was made."""
        now = time.time()
        topics = None if choice.topics is None else json.dumps(list(choice.topics), ensure_ascii=False)
        shown = json.dumps({"topics": list(offered), "pause_months": [1, 3, 6]}, ensure_ascii=False)
        self.store.add_preference(PreferenceRow(address, now, topics, choice.paused_until, shown, ip, source))
        return now

    def choices(self, offered: Sequence[str], now: float | None = None) -> ReaderChoices:
        """Every reader's current choice, as a send applies them."""
        found = {
            address_key(row.address): Choice(_topics(row.topics), row.paused_until)
            for row in self.store.current_preferences()
        }
        return ReaderChoices(found, tuple(offered), time.time() if now is None else now)


def reader_choices(settings: Settings, store: Store) -> ReaderChoices | None:
    """The readers' choices a send applies, or None when the settings have no ``[preferences]``."""
    if not settings.preferences.enabled:
        return None
    return PreferenceLog(store).choices(settings.preferences.topics)
