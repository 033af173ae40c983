"""Processing delivery reports: from files, an mbox or a Maildir, or the [bounces] IMAP folder."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import Settings
from ..store.bounce_log import Outcome, process_imap, process_paths
from .stores import faults_mapped

__all__ = ["process_bounces"]


def process_bounces(settings: Settings, paths: tuple[Path, ...]) -> list[Outcome]:
    """Read each report, record it, suppress whom it says to; returns what was done with each."""
    # flufl.bounce logs a traceback for each of its detectors that a strange message trips up;
    # such a message is reported as unrecognised, which is all the editor needs to know.
    quiet = logging.getLogger("flufl.bounce")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    with faults_mapped():
        return process_paths(settings, paths) if paths else process_imap(settings)
