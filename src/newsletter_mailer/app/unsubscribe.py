"""Unsubscribing: ONE function for the link's page (``POST /unsubscribe/TOKEN``) and for
``newsletter unsubscribe --token`` (replaying a request the page could not record), and the
address form of the command. A request that cannot be recorded raises NotRecorded with the
command that replays it."""

from __future__ import annotations

from dataclasses import dataclass

from ..audience.links import TokenSubject, signer_for
from ..audience.suppressions import Suppressed, SuppressionList
from ..config import Settings
from ..errors import NotRecorded, StateLost, StoreError
from ..store.rows import Suppression
from .stores import opened_store

__all__ = ["Unsubscribed", "replay_command", "resubscribe", "subscription_of", "suppress_address", "unsubscribe"]


@dataclass(frozen=True)
class Unsubscribed:
    address: str
    added: bool  # False: it was on the list already
    reason: str
    test: bool = False  # a [TEST] copy's link: nothing was changed


def replay_command(token: str) -> str:
    return f"newsletter unsubscribe --token {token}"


def unsubscribe(settings: Settings, token: str, source: str) -> Unsubscribed:
    """Put the address of an unsubscribe link's token on the suppression list (a test copy's token
    changes nothing); TokenError when the token is not one of this list's."""
    subject = signer_for(settings).read(token)
    if subject.test:
        return Unsubscribed(subject.address, False, "unsubscribed", test=True)
    try:
        with opened_store(settings) as store:
            done = SuppressionList(store).suppress(subject.address, "unsubscribed", source)
    except (StoreError, StateLost) as exc:
        raise NotRecorded(f"unsubscribe NOT recorded ({exc})", replay=replay_command(token)) from exc
    return Unsubscribed(done.address, done.added, done.reason)


def suppress_address(settings: Settings, address: str, reason: str, note: str = "") -> Suppressed:
    """``newsletter unsubscribe ADDRESS``: the organiser suppresses an address (``note``: free
    text kept beside the reason)."""
    with opened_store(settings) as store:
        return SuppressionList(store).suppress(address, reason, "cli", note)


def subscription_of(settings: Settings, address: str) -> Suppression | None:
    """The address's suppression, if it has one (what the confirmation page shows)."""
    with opened_store(settings) as store:
        return SuppressionList(store).get(address)


def resubscribe(settings: Settings, subject: TokenSubject) -> Suppression | None:
    """Take an address that unsubscribed off the list again; returns the suppression that keeps
    it off instead (a bounce, a complaint, the organiser's), if there is one."""
    if subject.test:
        return None
    with opened_store(settings) as store:
        suppressions = SuppressionList(store)
        current = suppressions.get(subject.address)
        if current is not None and current.reason != "unsubscribed":
            return current
        suppressions.remove(subject.address, "subscribed again on the web page")
    return None
