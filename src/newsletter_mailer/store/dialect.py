"""How SQLite and PostgreSQL differ, said once: the few marks queries.sql leaves open (clock,
case-insensitive compare, the larger of two values, conflict targets), the parameter style, and
how a write transaction that nobody else runs beside begins. Everything else is the same SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["POSTGRESQL", "SQLITE", "Dialect"]

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True, eq=False)  # one object per database: compared and cached by identity
class Dialect:
    name: str  # "sqlite" or "postgresql": a query named "claim_batch@sqlite" is that database's own
    marks: dict[str, str] = field(default_factory=dict)
    pyformat: bool = False  # psycopg's %(name)s instead of sqlite3's :name
    local_clock: bool = False  # {now} is this machine's clock, bound as the :now parameter

    def render(self, sql: str) -> str:
        """A statement of queries.sql as this driver runs it."""
        text = sql.format_map(_Marks(self.marks))
        if self.pyformat:
            text = _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))
        return text

    def begin_write(self, lock: int | None) -> tuple[str, ...]:
        """Statements that begin a write transaction. SQLite takes the database's write lock at
        once, so nothing it reads changes before it commits; PostgreSQL takes the advisory lock
        ``lock`` if one is named (released at commit): no other holder of it runs beside."""
        if self.name == "sqlite":
            return ("BEGIN IMMEDIATE",)
        return ("BEGIN",) if lock is None else ("BEGIN", f"SELECT pg_advisory_xact_lock({int(lock)})")


class _Marks(dict[str, str]):
    """Marks a dialect does not fill stay as they are (``{table}`` is filled at the call)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


SQLITE = Dialect(
    "sqlite",
    {
        "now": ":now",
        "ci": "",  # addresses are COLLATE NOCASE columns: the plain compare ignores case
        "greatest": "max",
        "address": "(address)",
        "address_in_issue": "address",
    },
    local_clock=True,
)
POSTGRESQL = Dialect(
    "postgresql",
    {
        "now": "extract(epoch FROM clock_timestamp())::double precision",
        "ci": "lower",  # as the unique indexes on lower(address)
        "greatest": "greatest",
        "address": "((lower(address)))",
        "address_in_issue": "(lower(address))",
    },
    pyformat=True,
)
