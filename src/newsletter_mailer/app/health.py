"""Whether the store answers, for ``serve``'s health check."""

from __future__ import annotations

from ..audience.suppressions import SuppressionList
from ..config import Settings
from .stores import opened_store

__all__ = ["store_answers"]


def store_answers(settings: Settings) -> int:
    """Open the store and read from it; returns the suppression count, raises when it cannot."""
    with opened_store(settings) as store:
        return len(SuppressionList(store))
