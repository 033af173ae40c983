"""What every store offers, whichever database holds it: the journal, the suppression list's
rows, the per-issue send lock and a versioned schema. SQLite (sqlite.py) and PostgreSQL
(postgres.py) implement it; open one with ``open_store`` (factory.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ..audience.suppressions import SuppressionStore
from .journal import Journal

__all__ = ["JournalRow", "Store", "redact_url"]


@dataclass(frozen=True)
class JournalRow:
    """One journal row with every column, as ``store copy`` moves it between stores."""

    issue: str
    address: str
    name: str
    fields: str
    line: int
    state: str
    attempts: int
    last_reply: str
    message_id: str
    resent: bool
    listed: float
    created: float
    updated: float
    sent_at: float | None


class Store(Journal, SuppressionStore, Protocol):
    """The journal and the suppression list in one database, with its send lock."""

    @property
    def where(self) -> str:
        """The store named for messages: a file path, or a URL without its password."""

    def close(self) -> None: ...
    def send_lock(self, issue: str) -> AbstractContextManager[None]:
        """Only one send of an issue at a time; dropped when the holder dies."""

    def schema_version(self) -> int: ...
    def migrate(self) -> tuple[int, int]:
        """Bring the schema to the code's version; returns (before, after)."""

    def journal_rows(self) -> Iterator[JournalRow]:
        """Every journal row, issue by issue in list order."""

    def import_journal_rows(self, rows: Iterable[JournalRow]) -> tuple[int, int]:
        """Insert rows whose (issue, address) is new; returns (inserted, already there)."""


def redact_url(url: str) -> str:
    """``postgresql://ann:secret@db/news`` -> ``postgresql://ann:***@db/news``; also a
    ``password=`` query parameter. For messages: a password never reaches a log or an error."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{host}"
    path, question, query = tail.partition("?")
    if question:
        params = [("password=***" if p.lower().startswith("password=") else p) for p in query.split("&")]
        query = "&".join(params)
    return f"{scheme}://{authority}{slash}{path}{question}{query}"
