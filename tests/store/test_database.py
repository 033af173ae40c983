"""database.py: one row per subscriber whatever the case of the address, in new and old databases."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.database import SCHEMA, connect


def test_addresses_differing_in_case_are_one_row_and_match_suppressions(store: Store) -> None:
    store.add_recipients("i", [Subscriber("Maria@Example.NET"), Subscriber("ann@example.org")])
    store.add_recipients("i", [Subscriber("maria@example.net"), Subscriber("ann@example.org")])
    assert store.counts("i")["pending"] == 2
    assert store.state_of("i", "MARIA@EXAMPLE.NET") == "pending"
    SuppressionList(store).add("MARIA@example.net", "unsubscribed")
    assert store.pending_suppressed("i") == 1
    claimed = store.claim_batch("i", "w", 5, lease=60)
    assert [d.address for d in claimed.deliveries] == ["ann@example.org"] and claimed.suppressed == 1
    assert store.state_of("i", "maria@example.net") == "suppressed"
    assert [row.address for row in store.journal_rows()][:1] == ["Maria@Example.NET"]  # the first spelling stays


def test_an_older_database_is_rebuilt_once_keeping_the_sent_row(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace(" COLLATE NOCASE,", ",", 1))
    now = time.time()
    for address, state in (("maria@example.net", "pending"), ("Maria@Example.NET", "sent"), ("b@x.org", "sent")):
        old.execute(
            "INSERT INTO deliveries (issue, address, state, created, updated) VALUES ('i', ?, ?, ?, ?)",
            (address, state, now, now),
        )
    old.commit()
    old.close()
    db = connect(path)
    try:
        rows = db.execute("SELECT address, state FROM deliveries ORDER BY id").fetchall()
        assert rows == [("Maria@Example.NET", "sent"), ("b@x.org", "sent")]
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "deliveries_by_state" in indexes
    finally:
        db.close()
    connect(path).close()  # the second time there is nothing to do
