"""The suppression list as the organiser manages it: export (to a file or a stream), import from
a CSV, take addresses off."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

from ..audience.suppressions import SuppressionList, remove_addresses
from ..config import Settings
from .stores import opened_store

__all__ = ["export_suppressions", "import_suppressions", "remove_suppressions"]


def export_suppressions(settings: Settings, output: AbstractContextManager[TextIO], *, removed: bool = False) -> int:
    """Write the list as CSV to ``output`` (opened once the store is); returns how many addresses."""
    with opened_store(settings) as store, output as handle:
        return SuppressionList(store).export_csv(handle, removed=removed)


def import_suppressions(settings: Settings, path: Path) -> tuple[int, list[str]]:
    """Add every address of the CSV; returns how many were new and the rows that were skipped."""
    with opened_store(settings) as store:
        return SuppressionList(store).import_csv(path)


def remove_suppressions(settings: Settings, addresses: tuple[str, ...], note: str) -> list[str]:
    """Take addresses off the list; returns a line for each saying what was done."""
    with opened_store(settings) as store:
        return remove_addresses(SuppressionList(store), addresses, note)
