"""The suppression list as the organiser manages it: export (to a file or a stream), import from
a CSV, take addresses off."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ..audience.suppressions import SuppressionList, remove_addresses
from ..config import Settings
from .stores import opened_store

__all__ = ["export_suppressions", "import_suppressions", "remove_suppressions"]


def export_suppressions(settings: Settings, out: TextIO | Path, *, removed: bool = False) -> int:
    """Write the list as CSV to a stream or a file; returns how many addresses."""
    with opened_store(settings) as store:
        suppressions = SuppressionList(store)
        if not isinstance(out, Path):
            return suppressions.export_csv(out, removed=removed)
        with out.open("w", encoding="utf-8", newline="") as handle:
            return suppressions.export_csv(handle, removed=removed)


def import_suppressions(settings: Settings, path: Path) -> tuple[int, list[str]]:
    """Add every address of the CSV; returns how many were new and the rows that were skipped."""
    with opened_store(settings) as store:
        return SuppressionList(store).import_csv(path)


def remove_suppressions(settings: Settings, addresses: tuple[str, ...], note: str) -> list[str]:
    """Take addresses off the list; returns a line for each saying what was done."""
    with opened_store(settings) as store:
        return remove_addresses(SuppressionList(store), addresses, note)
