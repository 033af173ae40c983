"""A reader's own choices (docs/preferences.md): the topics they want and a pause. The rules are
here: what a posted form may say, how long a pause lasts, what a reader who never chose gets, and
how a choice shows in conditions (the ``topics`` column) and at send time (a paused reader is
skipped). The choices themselves are kept by audience/preference_log.py.

A form is hostile: only the topics the settings offer are taken (matched exactly, never echoed
back as markup), a pause is one of a few fixed values, and anything else is refused.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..config import Settings
from .subscribers import Subscriber, address_key

__all__ = [
    "PAUSE_MONTHS",
    "TOPICS",
    "Choice",
    "ChoiceError",
    "ReaderChoices",
    "months_later",
    "read_choice",
    "reader_defaults",
    "topics_cell",
]

TOPICS = "topics"  # the column a reader's topics are in, for conditions and merge fields
PAUSE_MONTHS = (1, 3, 6)
KEEP, RESUME = "keep", "resume"  # the pause field's other values: leave it as it is, end it now


def _(message: str) -> str:
    """Marks a message for the catalogues (babel.cfg extracts ``_``); the page translates it."""
    return message


class ChoiceError(ValueError):
    """A posted choice that cannot be taken; the message (English, in the catalogues) is safe to
    show the reader."""


@dataclass(frozen=True)
class Choice:
    """What a reader chose: ``topics`` None when they never chose topics (they get every one);
    ``paused_until`` epoch seconds, 0 for no pause."""

    topics: tuple[str, ...] | None
    paused_until: float = 0.0

    def paused(self, now: float) -> bool:
        return self.paused_until > now


def topics_cell(topics: Iterable[str]) -> str:
    """Topics as a ``topics`` cell holds them: "Diary, Local news" (``"Diary" in topics``)."""
    return ", ".join(topics)


def months_later(when: float, months: int) -> float:
    """The same day and time ``months`` later (the 31st becomes the month's last day), UTC."""
    start = dt.datetime.fromtimestamp(when, dt.UTC)
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day).timestamp()


def read_choice(form: Mapping[str, Sequence[str]], offered: Sequence[str], current: Choice, now: float) -> Choice:
    """The choice a posted form makes: the ticked topics among those ``offered`` (matched exactly,
    in the settings' order), and ``pause``: 1, 3 or 6 months from now, ``resume``, or ``keep``.
    A topic that is not offered, a pause of any other length, no pause at all (an empty body, a
    multipart one) or a repeated field is refused."""
    ticked = list(form.get("topic", ()))
    unknown = [t for t in ticked if t not in offered]
    if unknown:
        raise ChoiceError(_("That topic is not one this newsletter offers; please choose from the list."))
    if len(set(ticked)) != len(ticked):
        raise ChoiceError(_("Each topic can be chosen once."))
    pauses = list(form.get("pause", ()))  # the page always sends one: an empty or foreign body changes nothing
    if len(pauses) != 1:
        raise ChoiceError(_("Please choose one option for pausing."))
    paused_until = _pause(pauses[0], current, now)
    topics = tuple(t for t in offered if t in ticked) if offered else current.topics
    return Choice(topics, paused_until)


def _pause(value: str, current: Choice, now: float) -> float:
    if value == KEEP:
        return current.paused_until if current.paused(now) else 0.0
    if value == RESUME:
        return 0.0
    months = {str(n): n for n in PAUSE_MONTHS}.get(value)  # the exact text: "３" is a digit to int()
    if months is not None:
        return months_later(now, months)
    raise ChoiceError(_("A pause lasts 1, 3 or 6 months."))


@dataclass(frozen=True)
class ReaderChoices:
    """Every reader's current choice, as a send applies them: ``topics`` (the settings' topics)
    for a reader who never chose, their own where they did; paused readers left out."""

    choices: Mapping[str, Choice]  # by address_key
    offered: tuple[str, ...]
    now: float

    def of(self, address: str) -> Choice | None:
        return self.choices.get(address_key(address))

    def reader(self, subscriber: Subscriber) -> Subscriber:
        """The reader with their ``topics`` cell: their choice over a list column of that name;
        with no choice, the list's cell if it has one, else every topic."""
        choice = self.of(subscriber.email)
        cells = dict(subscriber.fields)
        if choice is not None and choice.topics is not None:
            cells[TOPICS] = topics_cell(choice.topics)
        elif TOPICS not in cells:
            if not self.offered:
                return subscriber
            cells[TOPICS] = topics_cell(self.offered)
        return replace(subscriber, fields=tuple(cells.items()))

    def paused(self, address: str) -> bool:
        choice = self.of(address)
        return choice is not None and choice.paused(self.now)


def reader_defaults(settings: Settings) -> dict[str, str]:
    """The cells a reader has from the settings when neither they nor the list say otherwise
    (every topic, with ``[preferences]``): what ``check`` fills a row with."""
    return {TOPICS: topics_cell(settings.preferences.topics)} if settings.preferences.enabled else {}
