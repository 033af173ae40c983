"""One reader's copy of an issue before it goes: the reader found in the list or among the
confirmed signups (``--as ADDRESS``), and the exact message they would get."""

from __future__ import annotations

from pathlib import Path

from ..audience.signup_log import confirmed_signups
from ..audience.subscribers import Subscriber, address_key, find_subscriber
from ..compose.artifacts import message_for
from ..config import Settings
from ..errors import SubscriberListError
from .stores import existing_store

__all__ = ["find_reader", "reader_message"]


def find_reader(settings: Settings, subscribers: Path | None, address: str) -> Subscriber:
    """The reader ``address`` (case ignored): their row in the list, else their confirmed signup;
    a reader in neither is an error naming the list."""
    path = subscribers or settings.path(settings.newsletter.subscribers)
    try:
        return find_subscriber(path, address)
    except SubscriberListError as not_listed:
        with existing_store(settings) as store:
            wanted = address_key(address.strip())
            for signup in confirmed_signups(store) if store is not None else ():
                if address_key(signup.email) == wanted:
                    return signup
        raise SubscriberListError(
            f"{address} is not in the list (or only on a skipped row) nor among the confirmed signups",
            file=not_listed.file,
            line=not_listed.line,
        ) from None


def reader_message(issue: Path, settings: Settings, address: str, subscribers: Path | None = None) -> bytes:
    """Exactly the message ``address`` would get in a send (their row, their variant, signed), sent nowhere."""
    return message_for(issue, settings, find_reader(settings, subscribers, address))
