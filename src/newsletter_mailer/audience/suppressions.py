"""The suppression list: addresses never to mail again, whatever the subscriber CSV says.

The rules (reasons, CSV import and export) live here; the rows live in the store beside the
journal (SQLite or PostgreSQL), so an unsubscribe recorded by ``serve`` is seen by a ``send``
that is already running, at its next recipient. The store is reached through the small
``SuppressionStore`` protocol (store/rows.py), whose rows (``Suppression``, ``Removal``) are
the store's: audience/ sits above store/ and reads and writes state only through it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError

from ..errors import SubscriberListError, UserInputError
from ..store.rows import Removal, Suppression, SuppressionStore
from .subscribers import clean_value, email_column, normalise_address, not_utf8_error, sniff_delimiter

# The one vocabulary of reasons, which the code acts on (a bounce count, a complaint rate); what a
# person says beyond it ("asked by phone") is the suppression's note.
REASONS = ("unsubscribed", "bounced", "complained", "manual")
MAX_NOTE = 500


def reason_and_note(reason: str, note: str = "") -> tuple[str, str]:
    """A reason as a person or a spreadsheet gives it, in the vocabulary: one of REASONS as it
    is; empty is ``manual``; any other words are a ``manual`` suppression's note (before ``note``)."""
    said, note = clean_value(reason), clean_value(note)
    if said.lower() in REASONS:
        return said.lower(), note[:MAX_NOTE]
    return "manual", "; ".join(part for part in (said, note) if part)[:MAX_NOTE]


@dataclass(frozen=True)
class Suppressed:
    """The outcome of suppressing one address: ``added`` False if it already was, for ``reason``."""

    address: str
    added: bool
    reason: str


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class SuppressionList:
    def __init__(self, store: SuppressionStore) -> None:
        self.store = store

    def add(self, address: str, reason: str, source: str = "", note: str = "") -> bool:
        """Suppress an address; True if it was not suppressed before. Repeating is harmless."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        return self.store.add_suppression(Suppression(address, reason, source, time.time(), note))

    def suppress(self, raw: str, reason: str, source: str, note: str = "") -> Suppressed:
        """Suppress an address as typed by a person, the reason in the vocabulary (other words
        become the note); the reason shown is the one on record."""
        try:
            address = normalise_address(raw)
        except EmailNotValidError as exc:
            raise UserInputError(f"{raw!r} is not a valid address: {exc}") from None
        reason, note = reason_and_note(reason, note)
        added = self.add(address, reason, source, note)
        current = self.get(address) or Suppression(address, reason, source, 0, note)
        return Suppressed(address, added, f"{current.reason}: {current.note}" if current.note else current.reason)

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
        header = ["email", "reason", "source", "created", "note"]
        writer.writerow(header + (["removed", "removal_note"] if removed else []))
        count = 0
        for entry in self:
            writer.writerow([entry.address, entry.reason, entry.source, _stamp(entry.created), _cell(entry.note)])
            count += 1
        for removal in self.removals() if removed else ():
            old = removal.entry
            row = [old.address, old.reason, old.source, _stamp(old.created), _cell(old.note), _stamp(removal.removed)]
            writer.writerow([*row, _cell(removal.note)])
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
            column = {c.strip().lower(): c for c in reversed(names)}
            for row in reader:
                raw = clean_value(row.get(email_col))
                if not raw or _value(row, column, "removed"):
                    continue  # a row of `export --all` for an address taken off the list
                try:
                    address = normalise_address(raw)
                except EmailNotValidError as exc:
                    problems.append(f"{path}:{reader.line_num}: {raw!r} is not a valid address: {exc}")
                    continue
                reason, note = reason_and_note(_value(row, column, "reason"), _uncell(_value(row, column, "note")))
                added += self.add(address, reason, f"import {path.name}", note)
        return added, problems


def _value(row: dict[str, str], columns: dict[str, str], key: str) -> str:
    """The cell of the column named ``key`` (any case), or "" where the file has no such column."""
    name = columns.get(key)
    return clean_value(row.get(name)) if name is not None else ""


def _cell(text: str) -> str:
    """A note as a spreadsheet cell: one that starts like a formula is shown, never run."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _uncell(text: str) -> str:
    """A cell ``_cell`` wrote, back as the note it was."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@") else text


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
