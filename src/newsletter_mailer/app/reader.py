"""One reader's copy of an issue before it goes: the reader found in the list or among the
confirmed signups (``--as ADDRESS``), and the exact message they would get."""

from __future__ import annotations

from pathlib import Path

from ..audience.choices import ReaderChoices
from ..audience.preference_log import reader_choices
from ..audience.signup_log import confirmed_signups
from ..audience.subscribers import Subscriber, address_key, find_subscriber
from ..compose.artifacts import message_for
from ..config import Settings
from ..errors import SubscriberListError
from .stores import existing_store

__all__ = ["find_reader", "reader_message", "with_choices"]


def find_reader(settings: Settings, subscribers: Path | None, address: str) -> Subscriber:
    """The reader ``address`` (case ignored): their row in the list, else their confirmed signup;
    a reader in neither is an error naming the list."""
    path = subscribers or settings.path(settings.newsletter.subscribers)
    try:
        return with_choices(settings, find_subscriber(path, address))
    except SubscriberListError as not_listed:
        with existing_store(settings) as store:
            wanted = address_key(address.strip())
            for signup in confirmed_signups(store) if store is not None else ():
                if address_key(signup.email) == wanted:
                    return with_choices(settings, signup)
        raise SubscriberListError(
            f"{address} is not in the list (or only on a skipped row) nor among the confirmed signups",
            file=not_listed.file,
            line=not_listed.line,
        ) from None


def with_choices(settings: Settings, reader: Subscriber) -> Subscriber:
    """The reader as a send sees them: with the topics they chose on the preferences page."""
    if not settings.preferences.enabled:
        return reader
    with existing_store(settings) as store:
        if store is None:
            return ReaderChoices({}, settings.preferences.topics, 0.0).reader(reader)
        choices = reader_choices(settings, store)
        return choices.reader(reader) if choices is not None else reader


def reader_message(issue: Path, settings: Settings, address: str, subscribers: Path | None = None) -> bytes:
    """Exactly the message ``address`` would get in a send (their row, their variant, signed), sent nowhere."""
    return message_for(issue, settings, find_reader(settings, subscribers, address))
