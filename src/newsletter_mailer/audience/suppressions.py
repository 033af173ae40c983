"""The suppression list: addresses never to mail again, whatever the subscriber CSV says.

The rules (reasons, CSV import and export) live here; the rows live in the store beside the
journal (SQLite or PostgreSQL), so an unsubscribe recorded by ``serve`` is seen by a ``send``
that is already running, at its next recipient. The store is reached through the small
``SuppressionStore`` protocol, because store/ sits above audience/ and implements it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from email_validator import EmailNotValidError

from ..errors import SubscriberListError, UserInputError
from .subscribers import clean_value, email_column, normalise_address, not_utf8_error, sniff_delimiter

REASONS = ("unsubscribed", "bounced", "complained", "manual")


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    created: float
    note: str = ""


@dataclass(frozen=True)
class Suppressed:
    """The outcome of suppressing one address: ``added`` False if it already was, for ``reason``."""

    address: str
    added: bool
    reason: str


@dataclass(frozen=True)
class Removal:
    """An address taken off the list: what it was, when and why."""

    entry: Suppression
    removed: float
    note: str


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class SuppressionStore(Protocol):
    """The rows of the suppression list; addresses compare without regard to case."""

    def add_suppression(self, entry: Suppression) -> bool:
        """Insert unless the address is there already; True if it was inserted."""

    def remove_suppression(self, address: str, note: str, when: float) -> Suppression | None:
        """Delete the entry and keep a record of it (when, why) in one transaction; the entry or None."""

    def iter_removals(self) -> Iterator[Removal]:
        """Every address taken off the list, oldest removal first."""

    def get_suppression(self, address: str) -> Suppression | None: ...
    def iter_suppressions(self) -> Iterator[Suppression]:
        """Every entry, oldest first."""

    def count_suppressions(self) -> int: ...


class SuppressionList:
    def __init__(self, store: SuppressionStore) -> None:
        self.store = store

    def add(self, address: str, reason: str, source: str = "") -> bool:
        """Suppress an address; True if it was not suppressed before. Repeating is harmless."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        return self.store.add_suppression(Suppression(address, reason, source, time.time()))

    def suppress(self, raw: str, reason: str, source: str) -> Suppressed:
        """Suppress an address as typed by a person; the reason shown is the one on record."""
        try:
            address = normalise_address(raw)
        except EmailNotValidError as exc:
            raise UserInputError(f"{raw!r} is not a valid address: {exc}") from None
        added = self.add(address, reason, source)
        current = self.get(address)
        return Suppressed(address, added, current.reason if current else reason)

    def remove(self, address: str, note: str = "") -> Suppression | None:
        """Take an address off the list; what it was, when it was removed and why stay on record."""
        return self.store.remove_suppression(address, note, time.time())

    def removals(self) -> Iterator[Removal]:
        return self.store.iter_removals()

    def get(self, address: str) -> Suppression | None:
        return self.store.get_suppression(address)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.get(address) is not None

    def __iter__(self) -> Iterator[Suppression]:
        return self.store.iter_suppressions()

    def __len__(self) -> int:
        return self.store.count_suppressions()

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
        try:  # a suppression export is small: check it all before adding any of it
            path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            handle.close()
            raise not_utf8_error(path) from None
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
