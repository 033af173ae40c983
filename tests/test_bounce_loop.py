"""The whole bounce loop against real parts: an issue goes out through a real SMTP server with
VERP senders, a delivery report for one subscriber lands in a real IMAP mailbox (Dovecot), the
`newsletter bounces` command suppresses that subscriber, and the next issue skips them, with
either store. Then the command on files: status, suppressions export, and bad input."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Dovecot, make_workspace, use_store
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.config import load_settings
from smtp_servers import SMTPTestServer

REPORTS = Path(__file__).parent / "audience" / "bounce_reports"


def newsletter(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def dsn_for(address: str, verp_sender: str) -> bytes:
    """Postfix's report, for ``address``, delivered to the VERP sender of its message."""
    text = (REPORTS / "postfix-user-unknown.eml").read_text()
    text = text.replace("gone@example.org", address).replace("To: bounces@news.example.org", f"To: {verp_sender}")
    return text.replace("Delivered-To: bounces@news.example.org", f"Delivered-To: {verp_sender}").encode()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_report_in_the_imap_mailbox_suppresses_the_subscriber_for_the_next_issue(
    tmp_path: Path, dovecot: Dovecot, kind: str, request: pytest.FixtureRequest
) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 4)
        if kind == "postgresql":
            use_store(root, request.getfixturevalue("migrated_pg_url"))
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(
                f'[bounces]\naddress = "bounces@news.example.org"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
                f'tls = false\nusername = "{dovecot.username}"\n'
            )
        sent = newsletter("send", "issue.md", "--yes", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        sender = {m.rcpt_tos[0]: m.mail_from for m in server.handler.messages}["user1@example.org"]
        dovecot.deliver(dsn_for("user1@example.org", sender))
        dovecot.deliver((REPORTS / "vacation-reply.eml").read_bytes())
        env = {"NEWSLETTER_BOUNCES_PASSWORD": dovecot.password}
        result = newsletter("bounces", cwd=root, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "imap:INBOX/1: hard, user1@example.org (issue): suppressed; 5.1.1" in result.stdout
        assert "imap:INBOX/2: auto-reply, no recipient of ours: ignored" in result.stdout
        assert dovecot.password not in result.stdout + result.stderr
        again = newsletter("bounces", cwd=root, env=env)
        assert again.returncode == 0 and "0 message(s)" in again.stdout
        server.handler.messages.clear()
        (root / "next.md").write_text((root / "issue.md").read_text())
        with open_campaign(root / "next.md", load_settings(workspace=root)) as campaign:
            summary = campaign.run()
    assert summary.sent == 3 and "user1@example.org" not in server.handler.copies()
    status = newsletter("status", "issue.md", cwd=root)
    assert "bounce report: hard for user1@example.org, suppressed; 5.1.1" in status.stdout
    exported = newsletter("suppressions", "export", cwd=root)
    assert "user1@example.org,bounced,issue: hard 5.1.1 550 5.1.1" in exported.stdout
    assert (root / ".newsletter" / "newsletter.db").exists() == (kind == "sqlite")


def test_the_command_reads_files_and_mbox_and_says_what_it_did(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2525, 0)
    box = mailbox.mbox(tmp_path / "returned.mbox")
    box.add((REPORTS / "qmail-no-dsn.eml").read_bytes())
    box.add(b"Subject: a letter\n\nSomeone wrote to the bounce address.\n")
    box.close()
    result = newsletter("bounces", str(REPORTS / "arf-complaint.eml"), str(tmp_path / "returned.mbox"), cwd=root)
    assert result.returncode == 0, result.stderr
    # Nobody here was ever mailed, so no report suppresses anyone.
    assert "complaint, no recipient of ours: ignored" in result.stdout
    assert "returned.mbox#2: unknown, no recipient of ours: unrecognised" in result.stdout
    assert "3 message(s): 0 suppressed, 0 counted, 2 ignored, 1 unrecognised, 0 duplicate" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2525, 0)
    missing = newsletter("bounces", "nowhere.eml", cwd=root)
    assert missing.returncode == 2 and missing.stderr.strip() == "nowhere.eml: error: no such file"
    (root / "junk.eml").write_text("garbage\n")  # trips some of flufl.bounce's detectors
    junk = newsletter("bounces", "junk.eml", cwd=root)
    assert junk.returncode == 0 and "Traceback" not in junk.stderr + junk.stdout, junk.stderr
    assert "1 unrecognised" in junk.stdout
    no_host = newsletter("bounces", cwd=root)
    assert no_host.returncode == 2 and "no [bounces] host" in no_host.stderr and "Traceback" not in no_host.stderr
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[bounces]\naddress = "bounces+x@news.example.org"\n')
    bad = newsletter("bounces", cwd=root)
    assert bad.returncode == 2 and "newsletter.toml:" in bad.stderr and "[bounces] address" in bad.stderr


def headers_of(data: bytes) -> str:
    """The header block of a message as a report quotes it (text/rfc822-headers)."""
    return data.partition(b"\r\n\r\n")[0].replace(b"\r\n", b"\n").decode()


def quoting_headers(address: str, original: bytes, to: str = "bounces@news.example.org") -> bytes:
    """Postfix's report for ``address`` that quotes the headers of the message really sent."""
    text = dsn_for(address, to).decode()
    start = text.index("Return-Path: <bounces@news.example.org>\nFrom: Test List")
    end = text.index("\n--4Tq9vX1Zk3z9sQ.1717492351/mail.news.example.org--")
    return (text[:start] + headers_of(original) + "\n" + text[end:]).encode()


def forged_arf(address: str) -> bytes:
    return (REPORTS / "arf-complaint.eml").read_bytes().replace(b"annoyed@example.org", address.encode())


def test_forged_reports_change_nothing_and_real_ones_suppress_through_the_command(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        with (root / "newsletter.toml").open("a") as handle:
            handle.write('[bounces]\naddress = "bounces@news.example.org"\n')
        sent = newsletter("send", "issue.md", "--yes", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
    senders = {m.rcpt_tos[0]: m.mail_from for m in server.handler.messages}
    token = senders["user3@example.org"].partition("+")[2].partition("@")[0]
    forgeries = {
        "plain.eml": dsn_for("user1@example.org", "bounces@news.example.org"),  # to the public address
        "arf.eml": forged_arf("user2@example.org"),
        "bad-mac.eml": dsn_for("user3@example.org", f"bounces+{token[:-4]}aaaa@news.example.org"),
        "swapped.eml": dsn_for("user1@example.org", senders["user4@example.org"]),  # user4's own token
    }
    for name, data in forgeries.items():
        (root / name).write_bytes(data)
    result = newsletter("bounces", *forgeries, cwd=root)
    assert result.returncode == 0, result.stderr
    assert "4 message(s): 0 suppressed, 0 counted, 0 ignored, 0 unrecognised, 0 duplicate, 4 unverified" in (
        result.stdout
    )
    assert "plain.eml: hard, user1@example.org (issue): unverified; 5.1.1" in result.stdout
    assert "arf.eml: complaint, user2@example.org (issue): unverified" in result.stdout
    exported = newsletter("suppressions", "export", cwd=root)
    assert "@example.org" not in exported.stdout
    status = newsletter("status", "issue.md", cwd=root)
    assert "bounce report: hard for user3@example.org, unverified; 5.1.1" in status.stdout
    (root / "real.eml").write_bytes(dsn_for("user3@example.org", senders["user3@example.org"]))
    real = newsletter("bounces", "real.eml", cwd=root)
    assert "real.eml: hard, user3@example.org (issue): suppressed; 5.1.1" in real.stdout, real.stdout
    exported = newsletter("suppressions", "export", cwd=root)
    assert "user3@example.org,bounced" in exported.stdout and "user1@" not in exported.stdout


def test_without_verp_only_a_report_quoting_our_message_id_suppresses(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        sent = newsletter("send", "issue.md", "--yes", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
    originals = {m.rcpt_tos[0]: m.data for m in server.handler.messages}
    (root / "forged.eml").write_bytes(dsn_for("user1@example.org", "bounces@news.example.org"))
    # user2's real Message-ID, in a report naming user1: proves nothing about user1.
    (root / "swapped.eml").write_bytes(quoting_headers("user1@example.org", originals["user2@example.org"]))
    (root / "real.eml").write_bytes(quoting_headers("user2@example.org", originals["user2@example.org"]))
    result = newsletter("bounces", "forged.eml", "swapped.eml", "real.eml", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "forged.eml: hard, user1@example.org (issue): unverified" in result.stdout
    assert "swapped.eml: hard, user1@example.org (issue): unverified" in result.stdout
    assert "real.eml: hard, user2@example.org (issue): suppressed" in result.stdout
    exported = newsletter("suppressions", "export", cwd=root)
    assert "user2@example.org,bounced" in exported.stdout and "user1@" not in exported.stdout


def poison_reports() -> dict[str, bytes]:
    qmail = (REPORTS / "qmail-no-dsn.eml").read_bytes()

    def charset(name: bytes) -> bytes:
        header = b'MIME-Version: 1.0\nContent-Type: text/plain; charset="' + name + b'"\n'
        return qmail.replace(b"Subject: failure notice\n", b"Subject: failure notice\n" + header)

    nested = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(3000))
    return {"bogus": charset(b"x-bogus"), "nul": charset(b"utf-8\0"), "nested": b"Subject: x\n" + nested}


def test_poison_in_the_imap_mailbox_is_quarantined_flagged_and_never_stops_the_run(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 2)
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(
                f'[bounces]\naddress = "bounces@news.example.org"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
                f'tls = false\nusername = "{dovecot.username}"\n'
            )
        assert newsletter("send", "issue.md", "--yes", cwd=root).returncode == 0
    sender = {m.rcpt_tos[0]: m.mail_from for m in server.handler.messages}["user1@example.org"]
    for data in poison_reports().values():
        dovecot.deliver(data)
    dovecot.deliver(dsn_for("user1@example.org", sender))
    dovecot.deliver(dsn_for("user0@example.org", "bounces@news.example.org"))  # forged: no proof
    dovecot.deliver(forged_arf("user0@example.org"))
    env = {"NEWSLETTER_BOUNCES_PASSWORD": dovecot.password}
    result = newsletter("bounces", cwd=root, env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "imap:INBOX/3: unreadable, no recipient of ours: quarantined; more than 40 nested" in result.stdout
    assert "imap:INBOX/4: hard, user1@example.org (issue): suppressed; 5.1.1" in result.stdout
    assert "imap:INBOX/5: hard, user0@example.org (issue): unverified; 5.1.1" in result.stdout
    assert "imap:INBOX/6: complaint, user0@example.org (issue): unverified" in result.stdout
    assert "1 suppressed" in result.stdout and "1 quarantined" in result.stdout and "2 unverified" in result.stdout
    exported = newsletter("suppressions", "export", cwd=root)
    assert "user1@example.org,bounced" in exported.stdout and "user0@" not in exported.stdout
    again = newsletter("bounces", cwd=root, env=env)
    assert again.returncode == 0 and "0 message(s)" in again.stdout, again.stdout + again.stderr
    imap = dovecot.client()
    try:
        imap.select("INBOX")
        assert imap.uid("SEARCH", "FLAGGED")[1] == [b"3"]  # the quarantined one, left for a person
        assert imap.uid("SEARCH", "UNSEEN")[1] == [b""]
        assert imap.uid("SEARCH", "ALL")[1] == [b"3 5 6"]  # quarantined and unverified: for a person
    finally:
        imap.logout()


def test_poison_in_a_maildir_is_flagged_and_a_huge_file_is_not_read(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2525, 0)
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    keys = {name: maildir.add(data) for name, data in poison_reports().items()}
    huge = tmp_path / "huge.eml"
    with huge.open("wb") as handle:  # 300 MB, sparse: reading it whole would take that much memory
        handle.write(b"Subject: big\n\n")
        handle.truncate(300 * 1024 * 1024)
    result = newsletter("bounces", str(tmp_path / "Maildir"), str(huge), cwd=root)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert f"{huge}: unreadable, no recipient of ours: quarantined; larger than 10 MB" in result.stdout
    assert "4 message(s)" in result.stdout and "2 quarantined" in result.stdout
    assert set(os.listdir(tmp_path / "Maildir" / "cur")) == {f"{keys['nested']}:2,FS"}
    again = newsletter("bounces", str(tmp_path / "Maildir"), cwd=root)
    assert "3 duplicate" in again.stdout
