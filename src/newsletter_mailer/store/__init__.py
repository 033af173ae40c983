"""store: the journal, the suppression list's rows, signups, bounce reports and the send lock, in
SQLite or PostgreSQL."""

from .factory import open_store

__all__ = ["open_store"]
