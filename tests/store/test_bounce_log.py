"""store/bounce_log.py: a report ends in the right action for the right journal row; VERP first,
reruns never count twice, soft bounces suppress only past the threshold, strangers are safe."""

from __future__ import annotations

import email
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TEST_SECRET, make_workspace, run_send, settings_for
from newsletter_mailer.audience.bounces import Action, Category, Policy
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.audience.verp import VerpCodec
from newsletter_mailer.send import dispatch
from newsletter_mailer.store.bounce_log import BounceLog
from newsletter_mailer.store.database import connect
from newsletter_mailer.store.journal import SQLiteJournal
from newsletter_mailer.store.sqlite import SQLiteSuppressionRows
from smtp_servers import SMTPTestServer

REPORTS = Path(__file__).parents[1] / "audience" / "bounce_reports"
BOUNCE_ADDRESS = "bounces@news.example.org"
CODEC = VerpCodec(TEST_SECRET.encode(), "test-list.example.org", BOUNCE_ADDRESS)


def report(name: str, recipient: str, *, to: str = BOUNCE_ADDRESS, issue_tag: str = "") -> bytes:
    """A fixture report rewritten to be about ``recipient`` and delivered to ``to``."""
    fixture = {"hard": "postfix-user-unknown.eml", "soft": "gmail-mailbox-full.eml"}[name]
    text = (REPORTS / fixture).read_text()
    original = {"hard": "gone@example.org", "soft": "full.inbox@example.org"}[name]
    text = text.replace(original, recipient).replace(f"To: {BOUNCE_ADDRESS}", f"To: {to}")
    return (text + issue_tag).encode()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "state" / "newsletter.db")
    journal = SQLiteJournal(connection)
    for issue in ("2024-04", "2024-05", "2024-06"):
        journal.add_recipients(issue, [Subscriber("ada@example.org"), Subscriber("bob@example.org")])
    yield connection
    connection.close()


def row_of(db: sqlite3.Connection, issue: str, address: str) -> int:
    return int(db.execute("SELECT id FROM deliveries WHERE issue = ? AND address = ?", (issue, address)).fetchone()[0])


def test_a_send_with_a_bounce_address_uses_one_verp_sender_per_recipient_and_a_bounce_suppresses(
    tmp_path: Path,
) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(f'[bounces]\naddress = "{BOUNCE_ADDRESS}"\n')
        run_send(root)
        senders = {m.rcpt_tos[0]: m.mail_from for m in server.handler.messages}
        assert len(set(senders.values())) == 5
        for sender in senders.values():
            local, _, domain = sender.rpartition("@")
            assert domain == "news.example.org" and local.startswith("bounces+") and "user" not in local
        # The remote server names a forwarding target, not our subscriber: the VERP token decides.
        data = report("hard", "forwarded@elsewhere.example.net", to=senders["user2@example.org"])
        db = connect(settings_for(root).database_path)
        try:
            outcome = BounceLog(db, verp=CODEC).process("report.eml", data)
            entry = SuppressionList(SQLiteSuppressionRows(db)).get("user2@example.org")
        finally:
            db.close()
        assert (outcome.address, outcome.issue, outcome.action) == ("user2@example.org", "issue", Action.SUPPRESSED)
        assert entry is not None and entry.reason == "bounced"
        assert "5.1.1" in entry.source and "User unknown" in entry.source and entry.source.startswith("issue:")
        server.handler.messages.clear()
        next_issue = root / "next.md"
        next_issue.write_text((root / "issue.md").read_text())
        with dispatch.open_campaign(next_issue, settings_for(root)) as campaign:
            preflight, summary = campaign.preflight, campaign.run()
    assert preflight.suppressed == 1 and summary.sent == 4
    assert "user2@example.org" not in server.handler.copies()


def test_the_same_report_twice_is_recorded_once(db: sqlite3.Connection) -> None:
    log = BounceLog(db, verp=CODEC)
    data = report("soft", "ada@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    assert log.process("a", data).action is Action.COUNTED
    assert log.process("a again", data).action is Action.DUPLICATE
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 1


def test_soft_bounces_suppress_on_the_third_different_issue_not_the_third_report(db: sqlite3.Connection) -> None:
    log = BounceLog(db, Policy(soft_threshold=3, window_days=30), CODEC)
    same_issue = CODEC.sender(row_of(db, "2024-04", "ada@example.org"))
    for n in range(3):
        outcome = log.process(f"same {n}", report("soft", "ada@example.org", to=same_issue, issue_tag=f"\n{n}"))
        assert (outcome.issue, outcome.action) == ("2024-04", Action.COUNTED)
    assert (
        log.process(
            "may", report("soft", "x@example.org", to=CODEC.sender(row_of(db, "2024-05", "ada@example.org")))
        ).action
        is Action.COUNTED
    )
    last = log.process(
        "june", report("soft", "x@example.org", to=CODEC.sender(row_of(db, "2024-06", "ada@example.org")))
    )
    assert (last.address, last.action) == ("ada@example.org", Action.SUPPRESSED)
    assert SuppressionList(SQLiteSuppressionRows(db)).get("ada@example.org") is not None


def test_soft_bounces_older_than_the_window_do_not_count(db: sqlite3.Connection) -> None:
    log = BounceLog(db, Policy(soft_threshold=2, window_days=30), CODEC)
    log.process("april", report("soft", "b", to=CODEC.sender(row_of(db, "2024-04", "bob@example.org"))))
    db.execute("UPDATE bounce_reports SET received = ?", (time.time() - 40 * 86400,))
    may = log.process("may", report("soft", "b", to=CODEC.sender(row_of(db, "2024-05", "bob@example.org"))))
    assert may.action is Action.COUNTED
    june = log.process("june", report("soft", "b", to=CODEC.sender(row_of(db, "2024-06", "bob@example.org"))))
    assert june.action is Action.SUPPRESSED


def test_without_a_token_the_report_is_believed_only_for_an_address_we_mailed(db: sqlite3.Connection) -> None:
    log = BounceLog(db, verp=CODEC)
    stranger = log.process("s", report("hard", "stranger@example.org"))
    assert (stranger.address, stranger.action) == ("", Action.IGNORED)
    assert SuppressionList(SQLiteSuppressionRows(db)).get("stranger@example.org") is None
    known = log.process("k", report("hard", "bob@example.org"))
    assert (known.address, known.action) == ("bob@example.org", Action.SUPPRESSED)


def test_a_forged_token_falls_back_to_the_report(db: sqlite3.Connection) -> None:
    token = CODEC.token(row_of(db, "2024-04", "ada@example.org"))
    forged = f"bounces+{token[:-3]}aaa@news.example.org"
    outcome = BounceLog(db, verp=CODEC).process("f", report("hard", "bob@example.org", to=forged))
    assert outcome.address == "bob@example.org"


def test_a_message_id_of_ours_names_the_issue_when_there_is_no_token(db: sqlite3.Connection) -> None:
    db.execute(
        "UPDATE deliveries SET message_id = '<6f1c2a9e@news.example.org>' WHERE issue = '2024-05' AND address = ?",
        ("bob@example.org",),
    )
    outcome = BounceLog(db).process("g", report("soft", "bob@example.org"))
    assert (outcome.address, outcome.issue) == ("bob@example.org", "2024-05")
    assert outcome.report.category is Category.SOFT


def test_a_complaint_suppresses_as_complained(db: sqlite3.Connection) -> None:
    data = (REPORTS / "arf-complaint.eml").read_bytes().replace(b"annoyed@example.org", b"ada@example.org")
    outcome = BounceLog(db).process("arf", data)
    entry = SuppressionList(SQLiteSuppressionRows(db)).get("ada@example.org")
    assert outcome.action is Action.SUPPRESSED and entry is not None and entry.reason == "complained"
    assert email.message_from_bytes(data).get_content_type() == "multipart/report"
