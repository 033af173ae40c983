"""Issue 26 items 2 and 3 end to end: `from = "Name <address>"`, Reply-To, and readers whose
address has a non-ASCII local part, through the real CLI and the signup page under uvicorn, each
mail read back by Python's strict header parser from a recording relay."""

from __future__ import annotations

import contextlib
import email
import logging
import time
from email import errors, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from conftest import free_port, make_workspace, serve_asgi
from newsletter_mailer.cli import main
from newsletter_mailer.config import load_settings
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import Received, SMTPTestServer

HELENE = "Hélène.Dupont@example.fr"
NAMED = (
    'from = "Kent Network <news@kent.example.org>"\n'
    'reply_to = "\\"Help, Desk\\" <help@kent.example.org>"\n'
    "[signup]\nper_ip_per_hour = 100\n"
)


def cli(root: Path, *args: str) -> Result:
    with contextlib.chdir(root):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def workspace(root: Path, port: int, extra: str = NAMED, rows: str = "") -> Path:
    make_workspace(root, port, 1)
    text = (root / "newsletter.toml").read_text().replace('from = "news@example.org"\n', "")
    text = text.replace("[newsletter]\n", "[newsletter]\n" + extra.split("[signup]")[0], 1)
    if "[signup]" in extra:
        text += "[signup]" + extra.split("[signup]")[1]
    (root / "newsletter.toml").write_text(text)
    if rows:
        with (root / "subscribers.csv").open("a", encoding="utf-8") as handle:
            handle.write(rows)
    return root


def read(received: Received) -> EmailMessage:
    """The message as the strict parser reads it; a UTF-8 header (RFC 6532) is read as text."""
    message = email.message_from_string(received.data.decode("utf-8"), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def one_mailbox(message: EmailMessage, name: str) -> Address:
    """Exactly one header ``name`` holding exactly one mailbox, without defects (but the
    non-ASCII local part RFC 6532 allows)."""
    [value] = message.get_all(name) or [None]
    assert value is not None, name
    utf8 = (errors.NonASCIILocalPartDefect,)
    assert all(isinstance(d, utf8) for d in value.defects), value.defects
    assert len(value.groups) == 1 and value.groups[0].display_name is None
    [mailbox] = value.addresses
    assert isinstance(mailbox, Address)
    return mailbox


def check_named_sender(message: EmailMessage) -> None:
    sender = one_mailbox(message, "From")
    assert (sender.display_name, sender.addr_spec) == ("Kent Network", "news@kent.example.org")
    reply = one_mailbox(message, "Reply-To")
    assert (reply.display_name, reply.addr_spec) == ("Help, Desk", "help@kent.example.org")


def test_a_named_from_is_one_mailbox_in_the_newsletter_test_copy_and_confirmation(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = workspace(tmp_path / "ws", server.port)
        sent = cli(root, "send", "issue.md", "--yes")
        assert sent.exit_code == 0, sent.output
        tested = cli(root, "send", "issue.md", "--test")
        assert tested.exit_code == 0, tested.output
        assert len(server.handler.messages) == 2
        port = free_port()
        text = (root / "newsletter.toml").read_text().replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        (root / "newsletter.toml").write_text(text)
        with serve_asgi(create_app(load_settings(workspace=root)), port) as base:
            answer = httpx.post(f"{base}/subscribe", data={"email": "new@example.org", "name": "New"})
            assert answer.status_code == 200 and "Check your inbox" in answer.text
            wait_for(server, 3)
    for received in server.handler.messages:
        assert received.mail_from == "news@kent.example.org"
        check_named_sender(read(received))
    subjects = [read(r)["Subject"] for r in server.handler.messages]
    assert subjects[1].startswith("[TEST]") and "confirm" in subjects[2]


def wait_for(server: SMTPTestServer, count: int, wait: float = 10.0) -> None:
    deadline = time.monotonic() + wait
    while len(server.handler.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_reader_with_a_non_ascii_local_part_is_mailed_with_smtputf8(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = workspace(tmp_path / "ws", server.port, rows=f"{HELENE},Hélène\n")
        sent = cli(root, "send", "issue.md", "--yes")
        assert sent.exit_code == 0, sent.output
    assert server.handler.copies() == {"user0@example.org": 1, HELENE: 1}
    helene = read(next(r for r in server.handler.messages if r.rcpt_tos == (HELENE,)))
    to = one_mailbox(helene, "To")
    assert (to.display_name, to.addr_spec) == ("Hélène", HELENE)
    raw_to = next(line for line in helene.as_string().splitlines() if line.startswith("To:"))
    assert "=?" not in raw_to.partition("<")[2]  # the address itself is never an encoded-word


def test_a_relay_without_smtputf8_fails_only_those_readers_and_says_why(tmp_path: Path) -> None:
    with SMTPTestServer(smtputf8=False) as server:
        rows = "".join(f"{n}.{HELENE},Hélène {n}\n" for n in range(30))  # more than a failure streak
        root = workspace(tmp_path / "ws", server.port, rows=rows + "ann@example.org,Ann\n")
        (root / "newsletter.toml").write_text(
            (root / "newsletter.toml").read_text().replace("[smtp]\n", "[smtp]\nmax_consecutive_failures = 5\n")
        )
        sent = cli(root, "send", "issue.md", "--yes")
    assert sent.exit_code == 1, sent.output
    assert server.handler.copies() == {"user0@example.org": 1, "ann@example.org": 1}
    assert "sent 2, failed 30" in sent.output and "paused" not in sent.output
    assert f"failed: 0.{HELENE}: not sent: the address has a non-ASCII local part" in sent.output.replace("\n", " ")
    status = cli(root, "status", "issue.md")
    assert "SMTPUTF8" in status.output


@pytest.mark.parametrize("smtputf8", [True, False])
def test_the_confirmation_mail_to_a_non_ascii_address(
    tmp_path: Path, smtputf8: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter_mailer.signup")
    with SMTPTestServer(smtputf8=smtputf8) as server:
        root = workspace(tmp_path / "ws", server.port)
        port = free_port()
        text = (root / "newsletter.toml").read_text().replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        (root / "newsletter.toml").write_text(text)
        with serve_asgi(create_app(load_settings(workspace=root)), port) as base:
            ordinary = httpx.post(f"{base}/subscribe", data={"email": "someone@example.org"})
            answer = httpx.post(f"{base}/subscribe", data={"email": HELENE, "name": "Hélène"})
            assert answer.status_code == 200 and answer.text == ordinary.text
            wait_for(server, 2 if smtputf8 else 1)
            deadline = time.monotonic() + 10
            while smtputf8 is False and "not sent" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
    if not smtputf8:
        assert server.handler.copies() == {"someone@example.org": 1}
        assert (
            "confirmation mail to Hé**" in caplog.text
            and "not sent: the address has a non-ASCII local part" in caplog.text
        )
        assert HELENE not in caplog.text  # the log masks the address, as the pages do
        return
    mail = read(next(r for r in server.handler.messages if r.rcpt_tos == (HELENE,)))
    to = one_mailbox(mail, "To")
    assert (to.display_name, to.addr_spec) == ("Hélène", HELENE)
    check_named_sender(mail)
