"""Processing delivery reports: from files, an mbox or a Maildir, or the [bounces] IMAP folder."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..audience.bounce_log import BounceLog, Outcome
from ..audience.bounces import Action, Policy
from ..audience.links import signer_for
from ..audience.mailbox import ImapMailbox, flag_maildir, read_paths
from ..audience.verp import VerpCodec
from ..config import Settings
from ..store.factory import open_store
from .stores import faults_mapped

__all__ = ["bounce_log", "process_bounces", "process_imap", "process_paths"]


def process_bounces(settings: Settings, paths: tuple[Path, ...]) -> list[Outcome]:
    """Read each report, record it, suppress whom it says to; returns what was done with each."""
    # flufl.bounce logs a traceback for each of its detectors that a strange message trips up;
    # such a message is reported as unrecognised, which is all the editor needs to know.
    quiet = logging.getLogger("flufl.bounce")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    with faults_mapped():
        return process_paths(settings, paths) if paths else process_imap(settings)


@contextmanager
def bounce_log(settings: Settings) -> Iterator[BounceLog]:
    """The workspace's bounce log in the store the settings name, with its policy and VERP codec."""
    b = settings.bounces
    verp = VerpCodec.from_signer(signer_for(settings), b.address) if b.address else None
    with open_store(settings) as store:
        yield BounceLog(store, Policy(b.soft_threshold, b.soft_window_days), verp)


def process_paths(settings: Settings, paths: Iterable[Path]) -> list[Outcome]:
    """Process every message in the given files, mbox files and Maildir folders."""
    outcomes: list[Outcome] = []
    with bounce_log(settings) as log:
        for message in read_paths(paths):
            outcome = log.process(message.source, message.data)
            if outcome.action is Action.QUARANTINED:
                flag_maildir(message)
            outcomes.append(outcome)
    return outcomes


def process_imap(settings: Settings) -> list[Outcome]:
    """Process the unseen messages of the IMAP folder; each is marked seen once recorded, and
    moved to the processed folder unless it is for a person to judge: unrecognised, unverified
    (it names a reader but proves nothing) or quarantined (also flagged)."""
    outcomes: list[Outcome] = []
    with bounce_log(settings) as log, ImapMailbox(settings.bounces) as box:
        for message in box.unseen():
            outcome = log.process(message.source, message.data)
            left = outcome.action in (Action.UNRECOGNISED, Action.UNVERIFIED, Action.QUARANTINED)
            box.done(message, move=not left, flag=outcome.action is Action.QUARANTINED)
            outcomes.append(outcome)
    return outcomes
