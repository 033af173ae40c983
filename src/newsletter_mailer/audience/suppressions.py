"""The suppression list: addresses never to mail again, whatever the subscriber CSV says.

Kept in the workspace database beside the journal, so an unsubscribe recorded by ``serve`` is
seen by a ``send`` that is already running, at its next recipient.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError

from ..errors import SubscriberListError
from .subscribers import clean_value, email_column, normalise_address, not_utf8_error, sniff_delimiter

REASONS = ("unsubscribed", "bounced", "complained", "manual")


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    created: float


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

    def remove(self, address: str) -> bool:
        return self.db.execute("DELETE FROM suppressions WHERE address = ?", (address,)).rowcount == 1

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

    def export_csv(self, out: TextIO) -> int:
        writer = csv.writer(out)
        writer.writerow(["email", "reason", "source", "created"])
        count = 0
        for entry in self:
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created))
            writer.writerow([entry.address, entry.reason, entry.source, created])
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
            for row in reader:
                raw = clean_value(row.get(email_col))
                if not raw:
                    continue
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
