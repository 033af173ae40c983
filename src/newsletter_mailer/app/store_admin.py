"""The store as its operator looks after it: bring its schema up to date, copy a workspace's
SQLite state into PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import STORE_SCHEMES, Settings
from ..errors import UserInputError
from ..store.base import without_password
from ..store.copy import CopyReport, copy_store
from ..store.factory import open_url
from ..store.sqlite import SQLiteStore
from .stores import faults_mapped, opened_store

__all__ = ["Copied", "Migrated", "copy_to", "migrate"]


@dataclass(frozen=True)
class Migrated:
    where: str
    before: int
    after: int


@dataclass(frozen=True)
class Copied:
    where: str  # the target, as the store names itself
    url: str  # the target's URL without its password, for [store] url
    migrated: Migrated
    report: CopyReport


def migrate(settings: Settings) -> Migrated:
    with opened_store(settings, check=False) as store:
        before, after = store.migrate()
        return Migrated(store.where, before, after)


def copy_to(settings: Settings, url: str, password: str) -> Copied:
    """Copy this workspace's SQLite state into the store at ``url`` (migrated first)."""
    if not url.startswith(STORE_SCHEMES):
        raise UserInputError("--to must be a postgresql://user@host/database URL")
    if not settings.database_path.exists():
        raise UserInputError("no SQLite store in this workspace to copy", file=settings.database_path)
    with faults_mapped():
        source = SQLiteStore.open(settings.database_path)
        try:
            target = open_url(url, password, check=False)
            try:
                before, after = target.migrate()
                report = copy_store(source, target)
            finally:
                target.close()
        finally:
            source.close()
    return Copied(target.where, without_password(target.where), Migrated(target.where, before, after), report)
