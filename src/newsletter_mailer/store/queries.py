"""The store's SQL, read once from queries.sql (each statement under ``-- name --``, as
procrastinate and listmonk keep theirs) and rendered once per dialect."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from .dialect import Dialect

__all__ = ["Queries", "queries_for"]

_HEADER = re.compile(r"^-- ([a-z_]+(?:@[a-z]+)?) --$", re.MULTILINE)


def _load() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        named[name] = "\n".join(lines).rstrip().rstrip(";")
    return named


class Queries:
    """The statements as one database runs them: ``queries["mark_sent"]``; a name that has a
    form of its own for this database (``claim_batch@sqlite``) gives that form."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        named = _load()
        own = f"@{dialect.name}"
        self._sql = {name: dialect.render(sql) for name, sql in named.items() if "@" not in name}
        self._sql.update({name[: -len(own)]: dialect.render(sql) for name, sql in named.items() if name.endswith(own)})

    def __getitem__(self, name: str) -> str:
        return self._sql[name]


@cache
def queries_for(dialect: Dialect) -> Queries:
    return Queries(dialect)
