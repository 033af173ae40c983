"""``newsletter store copy``: move a workspace's SQLite state into another store, typically
PostgreSQL: the journal (each row under its own number wherever the target has it free, since
the VERP sender of its message names it), the suppression list with its record of removals,
signup requests, confirmed signups with their consent, the log of confirmation mails, bounce
reports, readers' preference changes with their consent record, and each issue's first send
(the content hash a later run compares) with its runs (and their --where). Rows already in the
target stay as they are, so a copy that was interrupted can simply be run again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .base import JournalRow, Store

__all__ = ["Copied", "CopyReport", "copy_store"]

Row = TypeVar("Row")


@dataclass(frozen=True)
class Copied:
    """How many rows of one kind were copied, and how many were already there and left alone."""

    one: str  # what a row is, as the report says it: "suppressed address"
    many: str  # and more than one: "suppressed addresses"
    copied: int
    skipped: int


@dataclass(frozen=True)
class CopyReport:
    issues: tuple[str, ...]
    journal: Copied
    state: tuple[Copied, ...]  # everything but the journal, in the order the report says it
    renumbered: int = 0  # journal rows whose number the target had given to another row


def _copy(what: tuple[str, str], rows: Iterable[Row], add: Callable[[Row], bool]) -> Copied:
    copied = seen = 0
    for row in rows:
        seen += 1
        copied += add(row)
    return Copied(*what, copied, seen - copied)


def copy_store(source: Store, target: Store) -> CopyReport:
    issues: list[str] = []

    def rows_noting_issues() -> Iterator[JournalRow]:
        for row in source.journal_rows():
            if not issues or issues[-1] != row.issue:
                issues.append(row.issue)
            yield row

    inserted, skipped, renumbered = target.import_journal_rows(rows_noting_issues())
    state = (
        _copy(("suppressed address", "suppressed addresses"), source.iter_suppressions(), target.add_suppression),
        _copy(("suppression removal", "suppression removals"), source.iter_removals(), target.add_removal),
        # A request keeps its number, which its confirmation link names.
        _copy(
            ("signup request", "signup requests"),
            source.iter_signup_requests(),
            lambda request: target.add_signup_request(request) != 0,
        ),
        _copy(("confirmed signup", "confirmed signups"), source.iter_signups(), target.add_signup),
        _copy(
            ("confirmation mail logged", "confirmation mails logged"),
            source.iter_signup_mails(),
            target.add_signup_mail,
        ),
        _copy(("bounce report", "bounce reports"), source.iter_bounce_reports(), target.add_bounce_report),
        _copy(("preference change", "preference changes"), source.iter_preferences(), target.add_preference),
        # What a later run of a copied issue checks: the content it was first sent with, its runs.
        _copy(("first send of an issue", "first sends of issues"), source.iter_sends(), target.add_send),
        _copy(("send run", "send runs"), source.iter_runs(), target.add_run),
    )
    return CopyReport(tuple(issues), Copied("journal row", "journal rows", inserted, skipped), state, renumbered)
