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
