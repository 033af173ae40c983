"""The subscriber list as the organiser inspects it: ``subscribers check`` (who would be mailed,
counting confirmed signups) and ``subscribers export`` (the list a send uses, with consent)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..audience.subscribers import ListCheck, ListReport, check_list, read_subscribers
from ..audience.suppressions import SuppressionList
from ..config import Settings
from ..store.factory import confirmed_signups
from ..store.signup_log import export_list
from .stores import existing_store, opened_store

__all__ = ["ListSummary", "check_subscribers", "export_subscribers"]


@dataclass(frozen=True)
class ListSummary:
    check: ListCheck
    signups: int  # confirmed signups not in the CSV, who a send also mails (unless suppressed)


def check_subscribers(settings: Settings, path: Path) -> ListSummary:
    """Read the whole list; count who would be mailed, the confirmed signups included."""
    with existing_store(settings) as store:
        if store is None:
            return ListSummary(check_list(path, frozenset()), 0)
        suppressions = SuppressionList(store)
        result = check_list(path, suppressions)
        listed = {s.email.lower() for s in read_subscribers(path, ListReport(path))}
        extra = {s.email.lower() for s in confirmed_signups(store)} - listed
        return ListSummary(result, sum(1 for address in extra if address not in suppressions))


def export_subscribers(settings: Settings, out: TextIO | Path) -> int:
    """Write the list a send would use: the CSV plus confirmed signups, minus suppressions."""
    path = settings.path(settings.newsletter.subscribers)
    rows = read_subscribers(path, ListReport(path))
    with opened_store(settings) as store:
        if not isinstance(out, Path):
            return export_list(store, rows, out, settings.signup.fields)
        with out.open("w", encoding="utf-8", newline="") as handle:
            return export_list(store, rows, handle, settings.signup.fields)
