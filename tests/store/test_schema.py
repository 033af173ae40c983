"""schema.py: stores of every earlier schema version, made by the code of that version
(fixtures/make.py), are brought to the current one by the one migration path without losing a
row, and work afterwards: SQLite files back to the ones before versions and before addresses
ignored case, PostgreSQL stores of versions 1 to 6 (restored from pg_dump)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import PG_PASSWORD
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.errors import SchemaMismatch
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.postgres import PostgresStore
from newsletter_mailer.store.rows import PreferenceRow, SignupRequest
from newsletter_mailer.store.schema import VERSION
from newsletter_mailer.store.sqlite import SQLiteStore

FIXTURES = Path(__file__).parent / "fixtures"
SQLITE_FILES = sorted(FIXTURES.glob("sqlite-*.db"))
POSTGRES_DUMPS = sorted(FIXTURES.glob("postgres-*.sql"))
TABLES = (
    "deliveries",
    "suppressions",
    "suppression_removals",
    "sends",
    "workers",
    "pacing",
    "pacing_log",
    "signup_requests",
    "signups",
    "signup_mails",
    "bounce_reports",
    "runs",
)


def snapshot(rows_of: Any, columns_of: Any) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table, by the columns the old version had (flags as booleans)."""
    kept: dict[str, set[tuple[Any, ...]]] = {}
    for table, columns in columns_of().items():
        if table in TABLES:
            rows = rows_of(f"SELECT {', '.join(columns)} FROM {table}")
            flag = columns.index("resent") if "resent" in columns else -1
            kept[table] = {tuple(bool(v) if i == flag else v for i, v in enumerate(r)) for r in rows}
    return kept


def sqlite_columns(db: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in tables}


def works_after_the_upgrade(store: Store) -> None:
    """The upgraded store does what the current code asks of it."""
    assert store.schema_version() == VERSION
    assert store.recover_in_flight("issue-1") == 1  # cy was in flight under a lease long over
    assert [d.address for d in store.claim_batch("issue-2", "w2", 5, lease=60).deliveries] == ["ann@example.org"]
    assert store.add_recipients("issue-2", [Subscriber("ANN@example.org"), Subscriber("new@example.org")]) == 1
    assert store.hold("issue-2", ["NEW@example.org"]) == 1 and store.counts("issue-2")["held"] == 1
    store.record_run("issue-2", 'city == "Rivertön"')
    assert store.add_preference(PreferenceRow("ann@example.org", 1.0, '["Diary"]', 0.0, "{}", "", "page"))
    assert store.current_preference("ANN@example.org") == PreferenceRow(
        "ann@example.org", 1.0, '["Diary"]', 0.0, "{}", "", "page"
    )
    assert [where for _, where in store.runs("issue-2")] == ['city == "Rivertön"']
    kept = max((request.id for request in store.iter_signup_requests()), default=0)
    number = store.add_signup_request(SignupRequest(0, "late@example.org", "", "", 10.0, "", "v1", "n0nce"))
    assert number > kept and store.get_signup_request(number) == SignupRequest(
        number, "late@example.org", "", "", 10.0, "", "v1", "n0nce"
    )
    store.delete_signup_requests("late@example.org")
    assert store.add_signup_request(SignupRequest(0, "later@example.org", "", "", 11.0, "", "v1", "x")) > number


@pytest.mark.parametrize("fixture", SQLITE_FILES, ids=lambda p: p.stem)
def test_a_sqlite_file_of_every_earlier_version_is_upgraded_keeping_every_row(fixture: Path, tmp_path: Path) -> None:
    path = tmp_path / "newsletter.db"
    shutil.copyfile(fixture, path)
    with sqlite3.connect(path) as old:
        old_columns = sqlite_columns(old)
        before = snapshot(lambda sql: old.execute(sql).fetchall(), lambda: old_columns)
        old_version = old.execute("PRAGMA user_version").fetchone()[0]
    assert old_version < VERSION
    with SQLiteStore.open(path) as store:
        after = snapshot(lambda sql: store.db.execute(sql).fetchall(), lambda: old_columns)
        address = old_columns["deliveries"].index("address")
        twin = {row for row in before["deliveries"] if row[address] == "ANN@example.org"}
        # Before addresses ignored case, ANN@ and ann@ were two rows: the sent one stays.
        assert after == {**before, "deliveries": before["deliveries"] - twin}
        assert all(t in sqlite_columns(store.db) for t in TABLES)
        assert (
            "AUTOINCREMENT"
            in store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'signup_requests'").fetchone()[0]
        )
        works_after_the_upgrade(store)
    with SQLiteStore.open(path) as again:  # opening it again changes nothing
        assert again.schema_version() == VERSION and again.counts("issue-1")["sent"] == 1


@pytest.fixture
def restored(request: pytest.FixtureRequest, pg_url: str) -> str:
    """A PostgreSQL store as the code of an earlier version left it (its pg_dump, restored)."""
    import psycopg

    dump: Path = request.param
    with psycopg.connect(pg_url, password=PG_PASSWORD, autocommit=True) as db:
        db.execute(dump.read_text().encode())
    return pg_url


@pytest.mark.parametrize("restored", POSTGRES_DUMPS, ids=lambda p: p.stem, indirect=True)
def test_a_postgresql_store_of_every_earlier_version_is_migrated_keeping_every_row(restored: str) -> None:
    with pytest.raises(SchemaMismatch, match="run `newsletter store migrate`"):
        PostgresStore.open(restored, PG_PASSWORD)
    with PostgresStore.open(restored, PG_PASSWORD, check=False) as store:

        def columns() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for table, column in store.db.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " ORDER BY table_name, ordinal_position"
            ).fetchall():
                found.setdefault(table, []).append(column)
            return found

        old_columns = columns()
        before = snapshot(lambda sql: store.db.execute(sql.encode()).fetchall(), lambda: old_columns)
        old_version = store.schema_version()
        assert store.migrate() == (old_version, VERSION) and old_version < VERSION
        after = snapshot(lambda sql: store.db.execute(sql.encode()).fetchall(), lambda: old_columns)
        assert after == before
        assert all(t in columns() for t in TABLES)
        works_after_the_upgrade(store)
        assert store.migrate() == (VERSION, VERSION)
