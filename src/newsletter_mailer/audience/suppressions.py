"""The suppression list: addresses never to mail again, whatever the subscriber CSV says.

Kept in the workspace database beside the journal, so an unsubscribe recorded by ``serve`` is
seen by a ``send`` that is already running, at its next recipient.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError

from ..errors import SubscriberListError, UserInputError
from .subscribers import clean_value, email_column, normalise_address, sniff_delimiter

REASONS = ("unsubscribed", "bounced", "complained", "manual")


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    created: float


@dataclass(frozen=True)
class Removal:
    """An address taken off the list: what it was, when and why."""

    entry: Suppression
    removed: float
    note: str


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class SuppressionList:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def add(self, address: str, reason: str, source: str = "") -> bool:
        """Suppress an address; True if it was not suppressed before. Repeating is harmless."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO suppressions (address, reason, source, created) VALUES (?, ?, ?, ?)",
            (address, reason, source, time.time()),
        )
        return cursor.rowcount == 1

    def remove(self, address: str, note: str = "") -> Suppression | None:
        """Take an address off the list; what it was, when it was removed and why stay on record."""
        self.db.execute("BEGIN IMMEDIATE")  # the record and the removal together, or neither
        try:
            entry = self.get(address)
            if entry is not None:
                self.db.execute(
                    "INSERT INTO suppression_removals (address, reason, source, created, removed, note)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (entry.address, entry.reason, entry.source, entry.created, time.time(), note),
                )
                self.db.execute("DELETE FROM suppressions WHERE address = ?", (address,))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return entry

    def removals(self) -> Iterator[Removal]:
        for row in self.db.execute(
            "SELECT address, reason, source, created, removed, note FROM suppression_removals ORDER BY removed"
        ):
            yield Removal(Suppression(*row[:4]), row[4], row[5])

    def get(self, address: str) -> Suppression | None:
        row = self.db.execute(
            "SELECT address, reason, source, created FROM suppressions WHERE address = ?", (address,)
        ).fetchone()
        return Suppression(*row) if row else None

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.get(address) is not None

    def __iter__(self) -> Iterator[Suppression]:
        for row in self.db.execute("SELECT address, reason, source, created FROM suppressions ORDER BY created"):
            yield Suppression(*row)

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0])

    def export_csv(self, out: TextIO, *, removed: bool = False) -> int:
        """The list as CSV; with ``removed``, also every address taken off it, with when and why."""
        writer = csv.writer(out)
        writer.writerow(["email", "reason", "source", "created", *(["removed", "removal_note"] if removed else [])])
        count = 0
        for entry in self:
            writer.writerow([entry.address, entry.reason, entry.source, _stamp(entry.created)][: 6 if removed else 4])
            count += 1
        for removal in self.removals() if removed else ():
            old = removal.entry
            writer.writerow(
                [old.address, old.reason, old.source, _stamp(old.created), _stamp(removal.removed), removal.note]
            )
            count += 1
        return count

    def import_csv(self, path: Path) -> tuple[int, list[str]]:
        """Add every address of a CSV (email column, optional reason); returns (added, problems)."""
        problems: list[str] = []
        added = 0
        try:
            handle = path.open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            raise SubscriberListError("file not found", file=path) from None
        with handle:
            sample = handle.readline()
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=sniff_delimiter(sample))
            names = list(reader.fieldnames or [])
            index = email_column(names)
            if index < 0:
                raise SubscriberListError("no email column in the header", file=path, line=1)
            email_col = names[index]
            reason_col = next((c for c in names if c.strip().lower() == "reason"), None)
            removed_col = next((c for c in names if c.strip().lower() == "removed"), None)
            for row in reader:
                raw = clean_value(row.get(email_col))
                if not raw or (removed_col and clean_value(row.get(removed_col))):
                    continue  # a row of `export --all` for an address taken off the list
                try:
                    address = normalise_address(raw)
                except EmailNotValidError as exc:
                    problems.append(f"{path}:{reader.line_num}: {raw!r} is not a valid address: {exc}")
                    continue
                reason = clean_value(row.get(reason_col)) if reason_col else "manual"
                if reason not in REASONS:
                    problems.append(f"{path}:{reader.line_num}: unknown reason {reason!r}; using manual")
                    reason = "manual"
                added += self.add(address, reason, f"import {path.name}")
        return added, problems


def remove_addresses(suppressions: SuppressionList, addresses: Sequence[str], note: str) -> list[str]:
    """Take addresses off the list, each checked first so a typo removes nothing; a line per address."""
    normalised = []
    for raw in addresses:
        try:
            normalised.append(normalise_address(raw))
        except EmailNotValidError as exc:
            raise UserInputError(f"{raw!r} is not a valid address: {exc}; nothing was removed") from None
    lines = []
    for address in normalised:
        entry = suppressions.remove(address, note)
        if entry is None:
            lines.append(f"{address} was not on the suppression list")
        else:
            lines.append(f"removed {address} (was {entry.reason} since {_stamp(entry.created)})")
    return lines
