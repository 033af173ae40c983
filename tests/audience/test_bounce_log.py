"""audience/bounce_log.py on both stores: a report ends in the right action for the right journal
row; only a report that proves its recipient (VERP token or Message-ID of ours) is acted on,
reruns never count twice, soft bounces suppress only past the threshold, forgeries and poison
change nothing, and the record and the suppression commit together."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import TEST_SECRET, make_workspace, refuse_inserts, run_send, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.bounce_log import BounceLog, BounceRecord
from newsletter_mailer.audience.bounces import Action, Category, Policy
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.audience.verp import VerpCodec
from newsletter_mailer.errors import StoreError
from newsletter_mailer.store.base import Store
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


def mark_sent(db: Store, issue: str, address: str) -> str:
    """Record ``address``'s message of ``issue`` as sent, as a send does; returns its Message-ID."""
    message_id = f"<{issue}.{address.partition('@')[0]}.6f1c2a9e@news.example.org>"
    delivery = next(d for d in db.claim_batch(issue, "w", 10, lease=60).deliveries if d.address == address)
    db.mark_sent(delivery, message_id, "250 ok")
    return message_id


def quoting(data: bytes, message_id: str) -> bytes:
    """The report with the returned message's headers quoting ``message_id``."""
    for quoted in (b"<0000notoursatall0000@example.org>", b"<6f1c2a9e@news.example.org>"):
        data = data.replace(quoted, message_id.encode())
    return data


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
        # The remote server names a forwarding target and, as Original-Recipient, our subscriber.
        data = report("hard", "forwarded@elsewhere.example.net", to=senders["user2@example.org"])
        data = data.replace(b"rfc822;forwarded@elsewhere.example.net", b"rfc822;user2@example.org")
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
            "may", report("soft", "ada@example.org", to=CODEC.sender(row_of(db, "2024-05", "ada@example.org")))
        ).action
        is Action.COUNTED
    )
    last = log.process(
        "june", report("soft", "ADA@example.org", to=CODEC.sender(row_of(db, "2024-06", "ada@example.org")))
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
    data = report("hard", "ada@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    with pytest.raises(StoreError, match="refused by the test"):
        BounceLog(db, verp=CODEC).process("hard", data)
    assert list(db.iter_bounce_reports()) == []  # not recorded: the next run processes it again


def test_without_a_proof_a_report_names_but_never_suppresses(db: Store) -> None:
    log = BounceLog(db, verp=CODEC)
    stranger = log.process("s", report("hard", "stranger@example.org"))
    assert (stranger.address, stranger.action) == ("", Action.IGNORED)
    known = log.process("k", report("hard", "bob@example.org"))
    assert (known.address, known.action) == ("bob@example.org", Action.UNVERIFIED)
    assert (
        SuppressionList(db).get("bob@example.org") is None and SuppressionList(db).get("stranger@example.org") is None
    )
    assert [r.action for r in db.iter_bounce_reports()] == ["ignored", "unverified"]


def test_a_forged_token_proves_nothing(db: Store) -> None:
    token = CODEC.token(row_of(db, "2024-04", "ada@example.org"))
    forged = f"bounces+{token[:-3]}aaa@news.example.org"
    outcome = BounceLog(db, verp=CODEC).process("f", report("hard", "ada@example.org", to=forged))
    assert (outcome.address, outcome.action) == ("ada@example.org", Action.UNVERIFIED)
    assert SuppressionList(db).get("ada@example.org") is None


def test_a_valid_token_of_someone_else_proves_nothing_about_the_reader_named(db: Store) -> None:
    bobs = CODEC.sender(row_of(db, "2024-04", "bob@example.org"))
    outcome = BounceLog(db, verp=CODEC).process("swap", report("hard", "ada@example.org", to=bobs))
    assert outcome.action is Action.UNVERIFIED
    assert SuppressionList(db).get("ada@example.org") is None and SuppressionList(db).get("bob@example.org") is None


def test_a_message_id_of_someone_else_proves_nothing_about_the_reader_named(db: Store) -> None:
    bobs = mark_sent(db, "2024-05", "bob@example.org")
    outcome = BounceLog(db).process("swap", quoting(report("hard", "ada@example.org"), bobs))
    assert outcome.action is Action.UNVERIFIED
    assert SuppressionList(db).get("ada@example.org") is None and SuppressionList(db).get("bob@example.org") is None


def test_a_message_id_of_ours_for_the_reader_named_suppresses_and_names_the_issue(db: Store) -> None:
    message_id = mark_sent(db, "2024-05", "bob@example.org")
    outcome = BounceLog(db).process("g", quoting(report("soft", "bob@example.org"), message_id))
    assert (outcome.address, outcome.issue, outcome.action) == ("bob@example.org", "2024-05", Action.COUNTED)
    assert outcome.report.category is Category.SOFT
    hard = BounceLog(db, verp=CODEC).process("h", quoting(report("hard", "Bob@Example.org"), message_id))
    assert hard.action is Action.SUPPRESSED and SuppressionList(db).get("bob@example.org") is not None


def test_unverified_soft_bounces_never_count_toward_the_threshold(db: Store) -> None:
    log = BounceLog(db, Policy(soft_threshold=2, window_days=30), CODEC)
    for n in range(5):
        assert log.process(f"forged {n}", report("soft", "ada@example.org", issue_tag=f"\n{n}")).action is (
            Action.UNVERIFIED
        )
    genuine = log.process(
        "real", report("soft", "ada@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    )
    assert genuine.action is Action.COUNTED


def arf(recipient: str, message_id: str = "") -> bytes:
    data = (REPORTS / "arf-complaint.eml").read_bytes().replace(b"annoyed@example.org", recipient.encode())
    return (
        data.replace(b"Subject: Hello\n", f"Subject: Hello\nMessage-ID: {message_id}\n".encode())
        if message_id
        else data
    )


def test_a_forged_complaint_changes_nothing_and_a_real_one_suppresses_as_complained(db: Store) -> None:
    forged = BounceLog(db).process("forged", arf("ADA@example.org"))
    assert (forged.report.category, forged.action) == (Category.COMPLAINT, Action.UNVERIFIED)
    assert SuppressionList(db).get("ada@example.org") is None
    message_id = mark_sent(db, "2024-04", "ada@example.org")
    outcome = BounceLog(db).process("arf", arf("ADA@example.org", message_id))
    entry = SuppressionList(db).get("ada@example.org")
    assert outcome.action is Action.SUPPRESSED and entry is not None and entry.reason == "complained"
    # Providers redact the recipient of a complaint: the Message-ID alone names them.
    bobs = mark_sent(db, "2024-05", "bob@example.org")
    redacted = arf("redacted@example.invalid", bobs)
    redacted = redacted.replace(b"Original-Rcpt-To: <redacted@example.invalid>\n", b"").replace(
        b"To: <redacted@example.invalid>", b"To: redacted"
    )
    assert BounceLog(db).process("redacted", redacted).action is Action.SUPPRESSED
    # Or rewrite it in the quoted headers (no Original-Rcpt-To): the Message-ID still names them.
    rewritten = arf("xxxxxxxx@example.org", bobs).replace(b"Original-Rcpt-To: <xxxxxxxx@example.org>\n", b"")
    outcome = BounceLog(db).process("rewritten", rewritten)
    assert (outcome.address, outcome.action) == ("bob@example.org", Action.SUPPRESSED)
    # But a complaint whose Original-Rcpt-To names another reader proves nothing about either.
    claimed = BounceLog(db).process("claimed", arf("carol@example.org", bobs))
    assert claimed.action is Action.UNVERIFIED and SuppressionList(db).get("carol@example.org") is None


def test_hostile_text_in_a_report_is_only_ever_a_parameter(db: Store) -> None:
    quoted = "<x');DROP/**/TABLE/**/deliveries;--@news.example.org> <nul\x00byte@news.example.org>"
    message_id = mark_sent(db, "2024-04", "bob@example.org")
    data = quoting(report("hard", "bob@example.org"), message_id).replace(
        b"Content-Type: text/plain", f"X-Ref: {quoted}\n".encode() + b"Content-Type: text/plain", 1
    )
    outcome = BounceLog(db).process("hostile", data)
    assert (outcome.address, outcome.action) == ("bob@example.org", Action.SUPPRESSED)
    assert db.counts("2024-05")["pending"] == 2


def qmail_in(charset: str) -> bytes:
    """qmail's report about ada, which flufl.bounce detects, in a charset Python cannot decode."""
    data = (REPORTS / "qmail-no-dsn.eml").read_bytes().replace(b"no.such.user@example.com", b"ada@example.org")
    header = f'MIME-Version: 1.0\nContent-Type: text/plain; charset="{charset}"\n'.encode()
    return data.replace(b"Subject: failure notice\n", b"Subject: failure notice\n" + header)


NESTED = b"Subject: failure notice\n" + b"".join(
    b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(3000)
)


@pytest.mark.parametrize(
    ("poison", "reason"),
    [(qmail_in("x-bogus"), ""), (qmail_in("utf-8\0"), ""), (NESTED, "nested multipart")],
    ids=["unknown charset", "NUL in charset", "3000 nested multiparts"],
)
def test_a_poison_report_is_quarantined_and_the_next_one_is_processed(db: Store, poison: bytes, reason: str) -> None:
    log = BounceLog(db, verp=CODEC)
    bad = log.process("poison", poison)
    if reason:
        assert bad.action is Action.QUARANTINED and reason in bad.report.diagnostic
    else:  # a charset nobody knows is read as UTF-8: the report is read, and proves nothing
        assert (bad.report.category, bad.address, bad.action) == (Category.HARD, "ada@example.org", Action.UNVERIFIED)
    good = log.process(
        "good", report("hard", "ada@example.org", to=CODEC.sender(row_of(db, "2024-04", "ada@example.org")))
    )
    assert good.action is Action.SUPPRESSED
    assert [r.action for r in db.iter_bounce_reports()] == [bad.action.value, "suppressed"]
