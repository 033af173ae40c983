"""A reader's preferences, as the page ``/preferences/TOKEN`` shows and changes them (the same
signed token as their unsubscribe link): what they chose, or what they get without a choice;
and a change, kept with its consent record. A test copy's token shows the page and changes
nothing."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..audience.choices import TOPICS, Choice, read_choice
from ..audience.links import TokenSubject
from ..audience.preference_log import PreferenceLog
from ..audience.segments import cell_items
from ..audience.signup_log import confirmed_signups
from ..audience.subscribers import Subscriber, address_key, find_subscriber, list_columns
from ..audience.suppressions import SuppressionList
from ..config import Settings
from ..errors import SubscriberListError, UserInputError
from ..store.base import Store
from .stores import opened_store

__all__ = ["Preferences", "change_preferences", "preferences_of"]


@dataclass(frozen=True)
class Preferences:
    """What the page shows: the topics offered, those the reader gets, and their pause."""

    address: str
    offered: tuple[str, ...]
    topics: tuple[str, ...]
    paused_until: float = 0.0
    chosen: bool = False  # the reader has made a choice on the page before
    unsubscribed: bool = False  # on the suppression list: nothing is sent, whatever is chosen


def _listed_topics(settings: Settings, store: Store, address: str) -> tuple[str, ...] | None:
    """The topics a reader without a stored choice gets: their signup's, else the list's
    ``topics`` cell (when it has that column); None when neither says (every topic)."""
    wanted = address_key(address)
    for signup in confirmed_signups(store):
        if address_key(signup.email) == wanted and TOPICS in dict(signup.fields):
            return cell_items(dict(signup.fields)[TOPICS])
    path = settings.path(settings.newsletter.subscribers)
    if TOPICS not in list_columns(path):
        return None
    try:
        row: Subscriber = find_subscriber(path, address)
    except (SubscriberListError, UserInputError):
        return None
    return cell_items(dict(row.fields).get(TOPICS, ""))


def preferences_of(settings: Settings, address: str) -> Preferences:
    offered = settings.preferences.topics
    with opened_store(settings) as store:
        unsubscribed = address in SuppressionList(store)
        choice = PreferenceLog(store).current(address)
        if choice is not None and choice.topics is not None:
            topics: tuple[str, ...] = choice.topics
        else:
            listed = _listed_topics(settings, store, address)
            topics = offered if listed is None else listed
    # A topic the settings no longer offer is not shown; one matched without regard to case is.
    folded = {t.casefold() for t in topics}
    shown = tuple(t for t in offered if t.casefold() in folded)
    paused = choice.paused_until if choice is not None and choice.paused(time.time()) else 0.0
    return Preferences(address, offered, shown, paused, chosen=choice is not None, unsubscribed=unsubscribed)


def change_preferences(
    settings: Settings, subject: TokenSubject, form: Mapping[str, Sequence[str]], ip: str
) -> Preferences:
    """Record the choice a posted form makes (ChoiceError for a form that cannot be taken); a test
    copy's token records nothing. A store that fails raises StoreError: the reader is told to try
    again, nothing half-kept."""
    offered = settings.preferences.topics
    now = time.time()
    current = preferences_of(settings, subject.address)
    choice = read_choice(form, offered, Choice(current.topics, current.paused_until), now)
    saved = Preferences(subject.address, offered, choice.topics or (), choice.paused_until, True, current.unsubscribed)
    if subject.test:
        return saved
    with opened_store(settings) as store:
        PreferenceLog(store).record(subject.address, choice, offered=offered, ip=ip, source="preferences page")
    return saved
