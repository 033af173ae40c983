"""store/bounce_log.py on both stores: a report ends in the right action for the right journal
row; VERP first, reruns never count twice, soft bounces suppress only past the threshold,
strangers are safe, and the record and the suppression commit together."""

from __future__ import annotations

import email
import time
from pathlib import Path

import pytest

from conftest import TEST_SECRET, make_workspace, refuse_inserts, run_send, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.bounces import Action, Category, Policy
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.audience.verp import VerpCodec
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.bounce_log import BounceLog, BounceRecord
from newsletter_mailer.store.sqlite import SQLiteStore
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
def db(store: Store) -> Store:
    """Either store, with ada and bob on the lists of three issues."""
    for issue in ("2024-04", "2024-05", "2024-06"):
        store.add_recipients(issue, [Subscriber("ada@example.org"), Subscriber("bob@example.org")])
    return store


def row_of(db: Store, issue: str, address: str) -> int:
    return next(row.id for row in db.journal_rows() if (row.issue, row.address) == (issue, address))


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
        with SQLiteStore.open(settings_for(root).database_path) as db:
            outcome = BounceLog(db, verp=CODEC).process("report.eml", data)
            entry = SuppressionList(db).get("user2@example.org")
        assert (outcome.address, outcome.issue, outcome.action) == ("user2@example.org", "issue", Action.SUPPRESSED)
        assert entry is not None and entry.reason == "bounced"
        assert "5.1.1" in entry.source and "User unknown" in entry.source and entry.source.startswith("issue:")
        server.handler.messages.clear()
        next_issue = root / "next.md"
        next_issue.write_text((root / "issue.md").read_text())
        with open_campaign(next_issue, settings_for(root)) as campaign:
            preflight, summary = campaign.preflight, campaign.run()
    assert preflight.suppressed == 1 and summary.sent == 4
    assert "user2@example.org" not in server.handler.copies()


def test_the_same_report_twice_is_recorded_once(db: Store) -> None:
    log = BounceLog(db, verp=CODEC)
    data = report("soft", "ada@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    assert log.process("a", data).action is Action.COUNTED
    assert log.process("a again", data).action is Action.DUPLICATE
    [record] = db.iter_bounce_reports()
    assert (record.address, record.issue, record.category, record.action, record.source) == (
        "ada@example.org",
        "2024-04",
        "soft",
        "counted",
        "a",
    )
    assert log.for_issue("2024-04") == [record] and log.for_issue("2024-05") == []


def test_soft_bounces_suppress_on_the_third_different_issue_not_the_third_report(db: Store) -> None:
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
    assert SuppressionList(db).get("ada@example.org") is not None


def test_soft_bounces_older_than_the_window_do_not_count(db: Store) -> None:
    log = BounceLog(db, Policy(soft_threshold=2, window_days=30), CODEC)
    long_ago = time.time() - 40 * 86400
    db.add_bounce_report(BounceRecord("Bob@Example.org", "2024-04", "soft", "", "", "counted", long_ago, "f1", "april"))
    may = log.process("may", report("soft", "b", to=CODEC.sender(row_of(db, "2024-05", "bob@example.org"))))
    assert may.action is Action.COUNTED
    june = log.process("june", report("soft", "b", to=CODEC.sender(row_of(db, "2024-06", "bob@example.org"))))
    assert june.action is Action.SUPPRESSED


def test_soft_bounces_without_an_issue_count_one_issue_per_day(db: Store) -> None:
    log = BounceLog(db, Policy(soft_threshold=3, window_days=30), CODEC)
    noon = (int(time.time()) // 86400 - 3) * 86400 + 43200  # three days ago, midday UTC
    for n, received in enumerate((noon, noon + 3600)):  # the same day twice: one issue
        db.add_bounce_report(BounceRecord("bob@example.org", "", "soft", "", "", "counted", received, f"d{n}"))
    may = log.process("may", report("soft", "b", to=CODEC.sender(row_of(db, "2024-05", "bob@example.org"))))
    assert may.action is Action.COUNTED
    june = log.process("june", report("soft", "b", to=CODEC.sender(row_of(db, "2024-06", "bob@example.org"))))
    assert june.action is Action.SUPPRESSED


def test_the_record_and_the_suppression_commit_together(db: Store) -> None:
    refuse_inserts(db, "suppressions")
    data = report("hard", "x@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    with pytest.raises(match="refused by the test"):
        BounceLog(db, verp=CODEC).process("hard", data)
    assert list(db.iter_bounce_reports()) == []  # not recorded: the next run processes it again


def test_without_a_token_the_report_is_believed_only_for_an_address_we_mailed(db: Store) -> None:
    log = BounceLog(db, verp=CODEC)
    stranger = log.process("s", report("hard", "stranger@example.org"))
    assert (stranger.address, stranger.action) == ("", Action.IGNORED)
    assert SuppressionList(db).get("stranger@example.org") is None
    known = log.process("k", report("hard", "bob@example.org"))
    assert (known.address, known.action) == ("bob@example.org", Action.SUPPRESSED)


def test_a_forged_token_falls_back_to_the_report(db: Store) -> None:
    token = CODEC.token(row_of(db, "2024-04", "ada@example.org"))
    forged = f"bounces+{token[:-3]}aaa@news.example.org"
    outcome = BounceLog(db, verp=CODEC).process("f", report("hard", "bob@example.org", to=forged))
    assert outcome.address == "bob@example.org"


def test_a_message_id_of_ours_names_the_issue_when_there_is_no_token(db: Store) -> None:
    bob = next(d for d in db.claim_batch("2024-05", "w", 10, lease=60).deliveries if d.address == "bob@example.org")
    db.mark_sent(bob, "<6f1c2a9e@news.example.org>", "250 ok")
    outcome = BounceLog(db).process("g", report("soft", "bob@example.org"))
    assert (outcome.address, outcome.issue) == ("bob@example.org", "2024-05")
    assert outcome.report.category is Category.SOFT


def test_a_complaint_suppresses_as_complained(db: Store) -> None:
    data = (REPORTS / "arf-complaint.eml").read_bytes().replace(b"annoyed@example.org", b"ADA@example.org")
    outcome = BounceLog(db).process("arf", data)
    entry = SuppressionList(db).get("ada@example.org")
    assert outcome.action is Action.SUPPRESSED and entry is not None and entry.reason == "complained"
    assert email.message_from_bytes(data).get_content_type() == "multipart/report"


def test_hostile_text_in_a_report_is_only_ever_a_parameter(db: Store) -> None:
    quoted = "<x');DROP/**/TABLE/**/deliveries;--@news.example.org> <nul\x00byte@news.example.org>"
    data = report("hard", "bob@example.org").replace(
        b"Content-Type: text/plain", f"X-Ref: {quoted}\n".encode() + b"Content-Type: text/plain", 1
    )
    outcome = BounceLog(db).process("hostile", data)
    assert (outcome.address, outcome.action) == ("bob@example.org", Action.SUPPRESSED)
    assert db.counts("2024-04")["pending"] == 2
