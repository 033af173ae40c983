"""The subscriber list as the organiser inspects it: ``subscribers check`` (who would be mailed,
counting confirmed signups) and ``subscribers export`` (the list a send uses, with consent)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..audience.preference_log import reader_choices
from ..audience.signup import Tally, merge_lists
from ..audience.signup_log import confirmed_signups, export_list
from ..audience.subscribers import ListCheck, ListReport, check_list, read_subscribers
from ..audience.suppressions import SuppressionList
from ..config import Settings
from .stores import existing_store, opened_store

__all__ = ["ListSummary", "check_subscribers", "export_subscribers"]


@dataclass(frozen=True)
class ListSummary:
    check: ListCheck
    signups: int  # confirmed signups not in the CSV, who a send also mails (unless suppressed)


def check_subscribers(settings: Settings, path: Path) -> ListSummary:
    """Read the whole list once, as a send would merge it with the confirmed signups; count who
    would be mailed."""
    with existing_store(settings) as store:
        if store is None:
            return ListSummary(check_list(path, frozenset()), 0)
        suppressions, report, tally = SuppressionList(store), ListReport(path), Tally()
        suppressed = signups = 0
        for subscriber in merge_lists(read_subscribers(path, report), confirmed_signups(store), tally):
            listed = subscriber.email in suppressions
            from_csv = tally.from_signups == 0  # the CSV's rows come first, then the signups it lacks
            suppressed += listed and from_csv
            signups += not listed and not from_csv
        return ListSummary(ListCheck(report, suppressed), signups)


def export_subscribers(settings: Settings, output: AbstractContextManager[TextIO]) -> int:
    """Write the list a send would use (the CSV plus confirmed signups, minus suppressions) to
    ``output``, opened once the store is."""
    path = settings.path(settings.newsletter.subscribers)
    rows = read_subscribers(path, ListReport(path))
    with opened_store(settings) as store, output as handle:
        chosen = ("language",) if len(settings.newsletter.offered_languages) > 1 else ()  # on the form
        return export_list(store, rows, handle, (*settings.signup.fields, *chosen), reader_choices(settings, store))
