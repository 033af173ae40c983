"""The store's schema and its one migration path: version N is STEPS[N - 1], in SQLite and in
PostgreSQL alike; a store of any earlier version (SQLite files back to the ones made before
addresses ignored case) is brought to VERSION by the steps it lacks, in one transaction.

Each step says its change for both databases. PostgreSQL's are the statements every store
already ran, unchanged: they are history. SQLite's are written to be run on a file of any age
(tables created if missing, a column added if missing), because older code created tables at
every open rather than by version; a rebuild SQL cannot say is a function of the step.

SQLite keeps its version in ``PRAGMA user_version`` and is migrated when it is opened (one
editor's file, as it always was); PostgreSQL keeps it in ``newsletter_schema`` and is migrated
only by ``newsletter store migrate`` (a shared server whose other users may run older code).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STEPS", "VERSION", "Step", "migrate_sqlite", "sqlite_version"]

SQLiteChange = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Step:
    why: str
    sqlite: str | SQLiteChange
    postgresql: str


def _add_columns(table: str, columns: dict[str, str]) -> SQLiteChange:
    def add(db: sqlite3.Connection) -> None:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    return add


def _addresses_ignore_case(db: sqlite3.Connection) -> None:
    """A file made before addresses ignored case gets the NOCASE column: the table is rebuilt
    once, keeping one row per address and issue (a sent row before any other)."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'").fetchone()
    if "COLLATE NOCASE" in row[0]:
        return
    db.execute("DROP INDEX IF EXISTS deliveries_by_state")
    db.execute("ALTER TABLE deliveries RENAME TO deliveries_before_nocase")
    # The table as it is (with any columns later versions added), the address now NOCASE.
    db.execute(re.sub(r"(?i)(\baddress\s+TEXT\s+NOT NULL)", r"\1 COLLATE NOCASE", row[0], count=1))
    db.execute("CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (issue, state, id)")
    db.execute(
        "INSERT OR IGNORE INTO deliveries SELECT * FROM deliveries_before_nocase ORDER BY state = 'sent' DESC, id"
    )
    db.execute("DROP TABLE deliveries_before_nocase")


_SIGNUP_REQUESTS = """
CREATE TABLE signup_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    address     TEXT NOT NULL COLLATE NOCASE,
    name        TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL DEFAULT '',
    requested   REAL NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    wording     TEXT NOT NULL DEFAULT '',
    nonce       TEXT NOT NULL DEFAULT ''
)"""


def _request_numbers_never_reused(db: sqlite3.Connection) -> None:
    """A plain INTEGER PRIMARY KEY hands the number of the newest request, once it is gone, to the
    next one (whose link it would then name): the table is rebuilt with AUTOINCREMENT and the
    nonce column, keeping every row and its number."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'signup_requests'").fetchone()
    if "AUTOINCREMENT" in row[0]:
        return
    db.execute("ALTER TABLE signup_requests RENAME TO signup_requests_before_7")
    db.execute(_SIGNUP_REQUESTS)
    db.execute(
        "INSERT INTO signup_requests (id, address, name, fields, requested, ip, wording)"
        " SELECT id, address, name, fields, requested, ip, wording FROM signup_requests_before_7"
    )
    db.execute("DROP TABLE signup_requests_before_7")


def _notes(db: sqlite3.Connection) -> None:
    _add_columns("suppressions", {"note": "TEXT NOT NULL DEFAULT ''"})(db)
    _add_columns("suppression_removals", {"entry_note": "TEXT NOT NULL DEFAULT ''"})(db)


STEPS: tuple[Step, ...] = (
    Step(
        "the journal and the suppression list",
        """
        CREATE TABLE IF NOT EXISTS deliveries (
            id           INTEGER PRIMARY KEY,
            issue        TEXT    NOT NULL,
            address      TEXT    NOT NULL COLLATE NOCASE,
            name         TEXT    NOT NULL DEFAULT '',
            fields       TEXT    NOT NULL DEFAULT '',
            line         INTEGER NOT NULL DEFAULT 0,
            state        TEXT    NOT NULL DEFAULT 'pending',
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_reply   TEXT    NOT NULL DEFAULT '',
            message_id   TEXT    NOT NULL DEFAULT '',
            resent       INTEGER NOT NULL DEFAULT 0,
            listed       REAL    NOT NULL DEFAULT 0,
            created      REAL    NOT NULL,
            updated      REAL    NOT NULL,
            sent_at      REAL,
            UNIQUE (issue, address)
        );
        CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (issue, state, id);
        CREATE TABLE IF NOT EXISTS suppressions (
            address  TEXT PRIMARY KEY COLLATE NOCASE,
            reason   TEXT NOT NULL,
            source   TEXT NOT NULL DEFAULT '',
            created  REAL NOT NULL
        );
        """,
        """
        CREATE TABLE deliveries (
            id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            issue       text    NOT NULL,
            address     text    NOT NULL,
            name        text    NOT NULL DEFAULT '',
            fields      text    NOT NULL DEFAULT '',
            line        integer NOT NULL DEFAULT 0,
            state       text    NOT NULL DEFAULT 'pending',
            attempts    integer NOT NULL DEFAULT 0,
            last_reply  text    NOT NULL DEFAULT '',
            message_id  text    NOT NULL DEFAULT '',
            resent      boolean NOT NULL DEFAULT false,
            listed      double precision NOT NULL DEFAULT 0,
            created     double precision NOT NULL,
            updated     double precision NOT NULL,
            sent_at     double precision,
            UNIQUE (issue, address)
        );
        CREATE INDEX deliveries_by_state ON deliveries (issue, state, id);
        CREATE TABLE suppressions (
            address  text NOT NULL,
            reason   text NOT NULL,
            source   text NOT NULL DEFAULT '',
            created  double precision NOT NULL
        );
        CREATE UNIQUE INDEX suppressions_by_address ON suppressions (lower(address));
        """,
    ),
    Step(
        "several workers on one send",
        """
        CREATE TABLE IF NOT EXISTS sends (issue TEXT PRIMARY KEY, content_hash TEXT NOT NULL, started REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS workers (
            issue TEXT NOT NULL, worker TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL, last_seen REAL NOT NULL,
            PRIMARY KEY (issue, worker)
        );
        CREATE TABLE IF NOT EXISTS pacing (name TEXT PRIMARY KEY, next_at REAL NOT NULL);
        """,
        """
        ALTER TABLE deliveries ADD COLUMN worker text NOT NULL DEFAULT '',
                               ADD COLUMN lease_until double precision NOT NULL DEFAULT 0;
        CREATE TABLE sends (issue text PRIMARY KEY, content_hash text NOT NULL, started double precision NOT NULL);
        CREATE TABLE workers (
            issue text NOT NULL, worker text NOT NULL, host text NOT NULL, pid integer NOT NULL,
            sent integer NOT NULL DEFAULT 0, started double precision NOT NULL, last_seen double precision NOT NULL,
            PRIMARY KEY (issue, worker)
        );
        CREATE TABLE pacing (name text PRIMARY KEY, next_at double precision NOT NULL);
        """,
    ),
    Step(
        "a record of every address taken off the suppression list",
        """
        CREATE TABLE IF NOT EXISTS suppression_removals (
            address  TEXT NOT NULL COLLATE NOCASE,
            reason   TEXT NOT NULL,
            source   TEXT NOT NULL DEFAULT '',
            created  REAL NOT NULL,
            removed  REAL NOT NULL,
            note     TEXT NOT NULL DEFAULT ''
        );
        """,
        """
        CREATE TABLE suppression_removals (
            address text NOT NULL, reason text NOT NULL, source text NOT NULL DEFAULT '',
            created double precision NOT NULL, removed double precision NOT NULL, note text NOT NULL DEFAULT ''
        );
        """,
    ),
    Step(
        "addresses that differ only in case are one recipient",
        _addresses_ignore_case,
        """
        ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_issue_address_key;
        CREATE UNIQUE INDEX deliveries_by_address ON deliveries (issue, lower(address));
        """,
    ),
    Step(
        "a row's first attempt, and the log of messages a cap per hour counts",
        """
        CREATE TABLE IF NOT EXISTS pacing_log (name TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS pacing_log_by_name ON pacing_log (name, at);
        """,
        """
        ALTER TABLE deliveries ADD COLUMN first_try double precision NOT NULL DEFAULT 0;
        CREATE TABLE pacing_log (name text NOT NULL, at double precision NOT NULL);
        CREATE INDEX pacing_log_by_name ON pacing_log (name, at);
        """,
    ),
    Step(
        "signups with their consent, the log of confirmation mails, bounce reports",
        """
        CREATE TABLE IF NOT EXISTS signup_requests (
            id          INTEGER PRIMARY KEY,
            address     TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL DEFAULT '',
            fields      TEXT NOT NULL DEFAULT '',
            requested   REAL NOT NULL,
            ip          TEXT NOT NULL DEFAULT '',
            wording     TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE IF NOT EXISTS signups (
            address     TEXT PRIMARY KEY COLLATE NOCASE,
            name        TEXT NOT NULL DEFAULT '',
            fields      TEXT NOT NULL DEFAULT '',
            requested   REAL NOT NULL,
            request_ip  TEXT NOT NULL DEFAULT '',
            confirmed   REAL NOT NULL,
            confirm_ip  TEXT NOT NULL DEFAULT '',
            wording     TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE IF NOT EXISTS signup_mails (
            address     TEXT NOT NULL COLLATE NOCASE,
            ip          TEXT NOT NULL,
            sent        REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS signup_mails_by_address ON signup_mails (address, sent);
        CREATE INDEX IF NOT EXISTS signup_mails_by_ip ON signup_mails (ip, sent);
        CREATE TABLE IF NOT EXISTS bounce_reports (
            id           INTEGER PRIMARY KEY,
            fingerprint  TEXT NOT NULL UNIQUE,
            received     REAL NOT NULL,
            source       TEXT NOT NULL DEFAULT '',
            address      TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
            issue        TEXT NOT NULL DEFAULT '',
            category     TEXT NOT NULL,
            status       TEXT NOT NULL DEFAULT '',
            diagnostic   TEXT NOT NULL DEFAULT '',
            action       TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS bounce_reports_by_address ON bounce_reports (address, category, received);
        CREATE INDEX IF NOT EXISTS bounce_reports_by_issue ON bounce_reports (issue);
        """,
        """
        CREATE TABLE signup_requests (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            address text NOT NULL, name text NOT NULL DEFAULT '', fields text NOT NULL DEFAULT '',
            requested double precision NOT NULL, ip text NOT NULL DEFAULT '', wording text NOT NULL DEFAULT ''
        );
        CREATE INDEX signup_requests_by_address ON signup_requests (lower(address));
        CREATE INDEX signup_requests_by_time ON signup_requests (requested);
        CREATE TABLE signups (
            address text NOT NULL, name text NOT NULL DEFAULT '', fields text NOT NULL DEFAULT '',
            requested double precision NOT NULL, request_ip text NOT NULL DEFAULT '',
            confirmed double precision NOT NULL, confirm_ip text NOT NULL DEFAULT '', wording text NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX signups_by_address ON signups (lower(address));
        CREATE TABLE signup_mails (address text NOT NULL, ip text NOT NULL, sent double precision NOT NULL);
        CREATE INDEX signup_mails_by_address ON signup_mails (lower(address), sent);
        CREATE INDEX signup_mails_by_ip ON signup_mails (ip, sent);
        CREATE TABLE bounce_reports (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            fingerprint text NOT NULL UNIQUE, received double precision NOT NULL, source text NOT NULL DEFAULT '',
            address text NOT NULL DEFAULT '', issue text NOT NULL DEFAULT '', category text NOT NULL,
            status text NOT NULL DEFAULT '', diagnostic text NOT NULL DEFAULT '', action text NOT NULL
        );
        CREATE INDEX bounce_reports_by_address ON bounce_reports (lower(address), category, received);
        CREATE INDEX bounce_reports_by_issue ON bounce_reports (issue);
        """,
    ),
    Step(
        "a note beside a suppression's reason, kept in the record when the address is taken off the list",
        _notes,
        """
        ALTER TABLE suppressions ADD COLUMN note text NOT NULL DEFAULT '';
        ALTER TABLE suppression_removals ADD COLUMN entry_note text NOT NULL DEFAULT '';
        """,
    ),
    Step(
        "signup request numbers never handed out twice, and a random nonce per request its link names",
        _request_numbers_never_reused,
        """
        ALTER TABLE signup_requests ADD COLUMN nonce text NOT NULL DEFAULT '';
        """,
    ),
    Step(
        "each send's run with its --where filter (deliveries may now be 'held': left out by a --where)",
        """
        CREATE TABLE IF NOT EXISTS runs (issue TEXT NOT NULL, started REAL NOT NULL, filter TEXT NOT NULL DEFAULT '');
        """,
        """
        CREATE TABLE runs (issue text NOT NULL, started double precision NOT NULL, filter text NOT NULL DEFAULT '');
        """,
    ),
    Step(
        "readers' preferences (topics, a pause), each change kept with its consent record",
        """
        CREATE TABLE IF NOT EXISTS preferences (
            address       TEXT NOT NULL COLLATE NOCASE,
            chosen        REAL NOT NULL,
            topics        TEXT,
            paused_until  REAL NOT NULL DEFAULT 0,
            shown         TEXT NOT NULL DEFAULT '',
            ip            TEXT NOT NULL DEFAULT '',
            source        TEXT NOT NULL DEFAULT '',
            UNIQUE (address, chosen)
        );
        """,
        """
        CREATE TABLE preferences (
            address text NOT NULL, chosen double precision NOT NULL, topics text,
            paused_until double precision NOT NULL DEFAULT 0, shown text NOT NULL DEFAULT '',
            ip text NOT NULL DEFAULT '', source text NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX preferences_by_address ON preferences (lower(address), chosen);
        """,
    ),
)
VERSION = len(STEPS)

# Columns SQLite's steps add to a table that older code may have created in an older form.
_SQLITE_COLUMNS: dict[int, SQLiteChange] = {
    2: _add_columns("deliveries", {"worker": "TEXT NOT NULL DEFAULT ''", "lease_until": "REAL NOT NULL DEFAULT 0"}),
    5: _add_columns("deliveries", {"first_try": "REAL NOT NULL DEFAULT 0"}),
}


def sqlite_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate_sqlite(db: sqlite3.Connection) -> tuple[int, int]:
    """Run the steps a SQLite file lacks, all in one transaction; returns (before, after). The
    caller has checked that the file is not newer than the code."""
    before = sqlite_version(db)
    if before >= VERSION:
        return before, before
    db.execute("BEGIN IMMEDIATE")
    try:
        for number, step in enumerate(STEPS[before:], start=before + 1):
            if callable(step.sqlite):
                step.sqlite(db)
            else:
                for statement in filter(str.strip, step.sqlite.split(";")):
                    db.execute(statement)
            if number in _SQLITE_COLUMNS:
                _SQLITE_COLUMNS[number](db)
        db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return before, VERSION
