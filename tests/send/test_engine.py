"""The send engine (engine.py, campaign.py, trial.py) against real SMTP servers: exact accounting
under faults, resume after a pause, start-up refusals, unsubscribes honoured mid-run, test sends and dry runs."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest

from conftest import TEST_SECRET, journal_counts, make_workspace, run_send, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.links import TokenSigner
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import RenderedIssue, render_issue
from newsletter_mailer.errors import AlreadySending, ConfigError, SendPaused, SMTPStartError, UserInputError
from newsletter_mailer.send.engine import NoProgress
from newsletter_mailer.send.transport import Result
from newsletter_mailer.send.trial import dry_run, send_test
from newsletter_mailer.store.database import send_lock
from newsletter_mailer.store.sqlite import SQLiteStore
from smtp_servers import DROP, Faults, RawSMTPServer, Script, SMTPTestServer


def test_every_subscriber_gets_exactly_one_well_formed_message(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 40)
        preflight, summary = run_send(root)
    assert preflight.to_send == 40 and summary.sent == 40 and summary.failed == 0
    copies = server.handler.copies()
    assert set(copies) == {f"user{i}@example.org" for i in range(40)}
    assert set(copies.values()) == {1}
    tokens = set()
    signer = TokenSigner(TEST_SECRET.encode(), "test-list.example.org")
    for received in server.handler.messages:
        assert received.mail_from == "news@example.org"
        assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
        message = email.message_from_bytes(received.data, policy=policy.default)
        assert message["Subject"] == f"Hello {message['To'].addresses[0].display_name}"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = re.search(r"<https://lists\.example\.org/unsubscribe/([\w-]+)>", message["List-Unsubscribe"])
        assert token is not None
        assert signer.verify(token.group(1)) == received.rcpt_tos[0]
        tokens.add(token.group(1))
    assert len(tokens) == 40
    assert journal_counts(root)["sent"] == 40


def test_faults_are_retried_and_accounted_exactly(tmp_path: Path) -> None:
    bad = frozenset({"user3@example.org", "user17@example.org", "user29@example.org"})
    faults = Faults(rcpt_451=0.2, data_451=0.2, disconnect_every=7, reject=bad, seed=11)
    with SMTPTestServer(faults) as server:
        root = make_workspace(tmp_path / "ws", server.port, 60, smtp_extra="max_consecutive_failures = 100")
        _, summary = run_send(root)
    copies = server.handler.copies()
    good = {f"user{i}@example.org" for i in range(60)} - bad
    assert set(copies) == good and set(copies.values()) == {1}
    assert server.handler.replies["451-rcpt"] and server.handler.replies["451-data"]
    assert server.handler.replies["421"]
    assert summary.sent == 57 and summary.failed == 3 and summary.retried > 0
    counts = journal_counts(root)
    assert counts["sent"] == 57 and counts["failed"] == 3 and counts["pending"] == 0
    journal = SQLiteStore.open(settings_for(root).database_path)
    try:
        failures = {address: reply for address, _, reply in journal.failures("issue")}
        suppressions = SuppressionList(journal)
        assert set(failures) == bad
        assert all(reply.startswith("550 5.1.1") for reply in failures.values())
        assert all(suppressions.get(address).reason == "bounced" for address in bad)  # type: ignore[union-attr]
    finally:
        journal.close()


def test_temporary_errors_until_the_attempt_limit_fail_and_can_be_retried(tmp_path: Path) -> None:
    with SMTPTestServer(Faults(rcpt_451=1.0)) as server:
        root = make_workspace(
            tmp_path / "ws", server.port, 3, smtp_extra="max_attempts = 3\nmax_consecutive_failures = 100"
        )
        _, summary = run_send(root)
    assert summary.sent == 0 and summary.failed == 3
    assert all("gave up after 3 attempts" in reply for _, reply in summary.failures)
    with SMTPTestServer() as server:
        make_workspace(root, server.port, 3)
        preflight, summary = run_send(root, retry_failed=True)
    assert preflight.to_send == 3 and summary.sent == 3
    assert set(server.handler.copies().values()) == {1}


def test_slow_server_is_served_by_parallel_connections(tmp_path: Path) -> None:
    with SMTPTestServer(Faults(delay=0.05)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 24, smtp_extra="messages_per_connection = 5")
        _, summary = run_send(root)
    assert summary.sent == 24 and set(server.handler.copies().values()) == {1}
    assert server.handler.peak_in_data > 1  # messages were handed over side by side, not one by one


def test_vanishing_server_pauses_the_run_and_the_next_run_resumes(tmp_path: Path) -> None:
    first = SMTPTestServer(Faults(vanish_after=15))
    with first:
        root = make_workspace(tmp_path / "ws", first.port, 50, smtp_extra="max_consecutive_failures = 6")
        with pytest.raises(SendPaused, match="run the same `newsletter send` again"):
            run_send(root)
    counts = journal_counts(root)
    delivered = first.handler.copies()
    assert counts["sent"] == sum(delivered.values()) and counts["sent"] >= 15
    assert counts["sending"] == 0 and counts["pending"] == 50 - counts["sent"]
    with SMTPTestServer() as second:
        make_workspace(root, second.port, 50)
        preflight, _ = run_send(root)
    assert preflight.already_sent == counts["sent"]
    total = first.handler.copies() + second.handler.copies()
    assert set(total) == {f"user{i}@example.org" for i in range(50)}
    assert set(total.values()) == {1}


def test_refused_login_stops_before_anything_is_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
    with SMTPTestServer(credentials=("news", "right")) as server:
        root = make_workspace(tmp_path / "ws", server.port, 5, smtp_extra='username = "news"')
        with pytest.raises(SMTPStartError, match="refused the login") as caught:
            run_send(root)
    assert "wrong" not in str(caught.value)
    assert server.handler.messages == []
    counts = journal_counts(root)
    assert counts["pending"] == 5 and counts["sent"] == 0 and counts["sending"] == 0
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "right")
    with SMTPTestServer(credentials=("news", "right")) as server:
        make_workspace(root, server.port, 5, smtp_extra='username = "news"')
        _, summary = run_send(root)
    assert summary.sent == 5


def test_refused_connection_at_start_is_a_clear_error(tmp_path: Path) -> None:
    from conftest import free_port

    root = make_workspace(tmp_path / "ws", free_port(), 3)
    with pytest.raises(SMTPStartError, match=r"cannot connect to the SMTP server 127\.0\.0\.1"):
        run_send(root)
    assert journal_counts(root)["pending"] == 3


def test_unsubscribe_during_a_run_is_honoured_at_the_next_recipient(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 20, smtp_extra="concurrency = 1")
        settings = settings_for(root)
        with SQLiteStore.open(settings.database_path) as store:
            SuppressionList(store).add("user0@example.org", "unsubscribed", "before")
        with open_campaign(root / "issue.md", settings) as campaign:
            suppressions = SuppressionList(campaign.journal)
            assert campaign.preflight.suppressed == 1 and campaign.preflight.to_send == 19

            class Unsubscriber(NoProgress):
                def finished_one(self, address: str, result: Result | None) -> None:
                    if address == "user2@example.org":
                        suppressions.add("user10@example.org", "unsubscribed", "during the run")

            summary = campaign.run(Unsubscriber())
    copies = server.handler.copies()
    assert "user0@example.org" not in copies and "user10@example.org" not in copies
    assert summary.sent == 18 and summary.suppressed == 2


def test_invalid_and_duplicate_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(
            tmp_path / "ws",
            server.port,
            5,
            bad_rows="not-an-address,X\nUSER1@EXAMPLE.ORG,Dup\nuser1@Example.org,Dup2\n",
        )
        preflight, summary = run_send(root)
    assert preflight.invalid == 1 and preflight.duplicates == 2
    assert any(":7: 'not-an-address' is not a valid address" in p for p in preflight.problems)
    assert any(":8: USER1@example.org is a duplicate of line 3" in p for p in preflight.problems)
    assert any(":9: user1@example.org is a duplicate of line 3" in p for p in preflight.problems)
    assert summary.sent == 5  # addresses that differ only in case are one subscriber


def test_second_send_of_the_same_issue_is_refused(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    settings = settings_for(root)
    with (
        send_lock(settings.state_dir, "issue"),
        pytest.raises(AlreadySending, match="another"),
        open_campaign(root / "issue.md", settings),
    ):
        pass


def rendered_of(root: Path) -> RenderedIssue:
    return render_issue(read_issue(root / "issue.md"), settings_for(root))


def test_test_send_goes_to_any_address_and_records_nothing(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        result = send_test(rendered_of(root), settings_for(root), ("someone@example.net",))
        again = send_test(rendered_of(root), settings_for(root))
        send_test(rendered_of(root), settings_for(root), ("someone@example.net",))  # the same reader again
    assert [a for a, _ in result.results] == ["someone@example.net"]
    assert [a for a, _ in again.results] == ["editor@example.org"]
    first = email.message_from_bytes(server.handler.messages[0].data, policy=policy.default)
    assert first["Subject"] == "[TEST] Hello Test Reader"
    token = re.search(r"/unsubscribe/([\w-]+)", first["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    read = TokenSigner(TEST_SECRET.encode(), "test-list.example.org").read(token)
    assert (read.address, read.test) == ("someone@example.net", True)  # a test copy's link changes nothing
    repeat = email.message_from_bytes(server.handler.messages[2].data, policy=policy.default)
    assert first["Message-ID"] != repeat["Message-ID"]  # every test copy shows, none folded into another
    assert not settings_for(root).database_path.exists()  # no journal, no store: nothing recorded


def test_test_send_without_recipients_or_with_a_bad_one_is_a_clear_error(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    with pytest.raises(UserInputError, match=r"^--to 'nobody' is not a valid address") as raised:
        send_test(rendered_of(root), settings_for(root), ("nobody",))
    assert not isinstance(raised.value, ConfigError)  # the command line is to blame, not the settings


def test_dry_run_builds_every_message_and_sends_none(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 30, bad_rows="bad,row\n")
        report = dry_run(rendered_of(root), settings_for(root))
    assert report.built == 30 and report.invalid == 1 and report.octets > 30 * 1000
    assert server.handler.messages == []
    assert journal_counts(root)["pending"] == 0


def test_without_an_smtp_host_mail_goes_through_the_local_outbox(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 4)
    toml = (root / "newsletter.toml").read_text().replace('host = "127.0.0.1"', "")
    (root / "newsletter.toml").write_text(toml)
    _, summary = run_send(root)
    assert summary.sent == 4
    files = list((root / "outbox" / "new").iterdir())
    assert len(files) == 4
    message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["Delivered-To"].startswith("user") and message["List-Unsubscribe"]


def test_an_address_removed_from_the_list_before_resuming_is_not_mailed(tmp_path: Path) -> None:
    with SMTPTestServer(Faults(vanish_after=2)) as first:
        root = make_workspace(
            tmp_path / "ws", first.port, 10, smtp_extra="concurrency = 1\nmax_consecutive_failures = 2"
        )
        with pytest.raises(SendPaused):
            run_send(root)
    sent_before = set(first.handler.copies())
    csv = root / "subscribers.csv"
    with SMTPTestServer() as second:
        make_workspace(root, second.port, 0)  # points the workspace at the new server
        csv.write_text("email,name\n" + "\n".join(f"user{i}@example.org,User {i}" for i in range(10) if i != 7))
        preflight, summary = run_send(root)
        assert preflight.removed == 1 and "user7@example.org" not in second.handler.copies()
        assert set(second.handler.copies()) | sent_before == {f"user{i}@example.org" for i in range(10)} - {
            "user7@example.org"
        }
        csv.write_text(csv.read_text() + "\nuser7@example.org,User 7\n")
        preflight, summary = run_send(root)
    assert preflight.removed == 0 and preflight.to_send == 1 and summary.sent == 1
    assert second.handler.copies()["user7@example.org"] == 1


def test_a_list_without_an_email_column_stops_before_anything_is_sent(tmp_path: Path) -> None:
    from newsletter_mailer.errors import SubscriberListError

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        (root / "subscribers.csv").write_text("name,phone\nAda,1\n")
        with pytest.raises(SubscriberListError, match="no email column"):
            run_send(root)
    assert server.handler.messages == []


def test_dispatch_logic_with_the_in_memory_transport(tmp_path: Path) -> None:
    """No socket: the journal, suppression and envelope logic of a run, on their own."""
    from newsletter_mailer.send.transport import MemoryTransport

    root = make_workspace(tmp_path / "ws", 1, 12)
    settings = settings_for(root)
    with SQLiteStore.open(settings.database_path) as store:
        SuppressionList(store).add("user5@example.org", "manual")
    memory = MemoryTransport()
    with open_campaign(root / "issue.md", settings) as campaign:
        summary = campaign.run(transport=memory)
    assert summary.sent == 11 and summary.suppressed == 1
    assert sorted(e.recipient for e in memory.sent) == sorted(f"user{i}@example.org" for i in range(12) if i != 5)
    assert len({e.message_id for e in memory.sent}) == 11
    counts = journal_counts(root)
    assert counts["sent"] == 11 and counts["suppressed"] == 1 and counts["pending"] == 0


# Replies that say nothing against the recipient suppress nobody (RawSMTPServer misbehaves on cue).


def suppressed(root: Path) -> dict[str, str]:
    with SQLiteStore.open(settings_for(root).database_path) as store:
        return {entry.address: entry.reason for entry in SuppressionList(store)}


@pytest.mark.parametrize(
    "reply",
    [
        b"550 5.7.1 Relay access denied\r\n",
        b"550 5.1.1 <{address}>: User unknown in relay recipient table\r\n",
        # A broken VERP domain at one provider: every reader there is refused for our sender's sake.
        b"550 5.1.8 <bounces+ab2c@news.example.org>: Sender address rejected: Domain not found\r\n",
    ],
)
def test_a_relay_refusing_everyone_pauses_saying_so_and_suppresses_nobody(tmp_path: Path, reply: bytes) -> None:
    addresses = [f"user{i}@example.org" for i in range(30)]
    script = Script(rcpt={a: reply.replace(b"{address}", a.encode()) for a in addresses})
    with RawSMTPServer(script) as server:
        root = make_workspace(tmp_path / "ws", server.port, 30, smtp_extra="max_consecutive_failures = 6")
        with pytest.raises(SendPaused) as paused:
            run_send(root)
    said = str(paused.value)
    assert re.search(r"the relay refused \d+ recipients in a row with the same reply: 550 5\.[17]\.[18] ", said)
    assert "--retry-failed" in said and "\x1b" not in said
    assert suppressed(root) == {} and server.received == []
    counts = journal_counts(root)
    assert counts["sent"] == 0 and counts["sending"] == 0 and counts["failed"] + counts["pending"] == 30


def test_policy_system_and_full_mailbox_replies_fail_for_this_issue_only(tmp_path: Path) -> None:
    refusals = {
        "user1@example.org": b"550 5.7.515 Access denied, sending domain does not meet the authentication level\r\n",
        "user2@example.org": b"552 5.2.2 mailbox full\r\n",
        "user3@example.org": b"554 5.3.0 system not accepting network messages\r\n",
        "user4@example.org": b"550 5.4.1 Recipient address rejected: Access denied\r\n",
        "user5@example.org": b"550 what is this\r\n",
        "user6@example.org": b"550 5.1.1 no such user\r\n",
        "user7@example.org": b"550 5.2.1 mailbox disabled\r\n",
        "user8@example.org": b"550 5.1.8 <bounces@news.example.org>: Sender address rejected: Domain not found\r\n",
        "user9@example.org": b"553 5.1.7 bad sender's mailbox address syntax\r\n",
        "user10@example.org": b"550 5.1.0 <bounces@news.example.org>: Sender address rejected\r\n",
    }
    with RawSMTPServer(Script(rcpt=refusals)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 12, smtp_extra="concurrency = 1")
        _, summary = run_send(root)
    assert summary.sent == 2 and summary.failed == 10
    assert suppressed(root) == {"user6@example.org": "bounced", "user7@example.org": "bounced"}
    assert {r.rcpt_tos[0] for r in server.received} == {f"user{i}@example.org" for i in (0, 11)}


@pytest.mark.parametrize("end", [b"garbage\r\n", DROP])
def test_an_unreadable_reply_after_the_data_is_retried_and_counted_as_possibly_duplicated(
    tmp_path: Path, end: bytes
) -> None:
    with RawSMTPServer(Script(replies={"END": end}, end_times=1)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 3, smtp_extra="concurrency = 1")
        _, summary = run_send(root)
    assert summary.sent == 3 and summary.failed == 0 and summary.possibly_duplicated == 1
    assert len(server.received) == 4  # the first recipient's message went out twice
    assert journal_counts(root)["resent"] == 1


def test_a_250_to_the_data_command_is_never_recorded_as_sent(tmp_path: Path) -> None:
    with RawSMTPServer(Script(replies={"DATA": b"250 2.0.0 OK\r\n"})) as server:
        root = make_workspace(
            tmp_path / "ws", server.port, 2, smtp_extra="max_attempts = 2\nmax_consecutive_failures = 100"
        )
        _, summary = run_send(root)
    assert summary.sent == 0 and summary.failed == 2 and server.received == []
    assert journal_counts(root)["sent"] == 0
