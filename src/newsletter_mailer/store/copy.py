"""``newsletter store copy``: move a workspace's SQLite state (journal and suppression list) into
another store, typically PostgreSQL. Rows already in the target stay as they are, so a copy that
was interrupted can simply be run again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .base import JournalRow, Store

__all__ = ["CopyReport", "copy_store"]


@dataclass(frozen=True)
class CopyReport:
    issues: tuple[str, ...]
    journal_rows: int
    journal_skipped: int
    suppressions: int
    suppressions_skipped: int


def copy_store(source: Store, target: Store) -> CopyReport:
    issues: list[str] = []

    def rows_noting_issues() -> Iterator[JournalRow]:
        for row in source.journal_rows():
            if not issues or issues[-1] != row.issue:
                issues.append(row.issue)
            yield row

    inserted, skipped = target.import_journal_rows(rows_noting_issues())
    added = seen = 0
    for entry in source.iter_suppressions():
        seen += 1
        added += target.add_suppression(entry)
    return CopyReport(tuple(issues), inserted, skipped, added, seen - added)
