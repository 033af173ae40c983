"""Issue 9 end to end: nothing in a subscriber list can break, leak or forge a send. Each case runs
the real `newsletter` command (click's runner) against a recording aiosmtpd server."""

from __future__ import annotations

import base64
import contextlib
import email
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import dkim as dkimpy
import pytest
from click.testing import CliRunner, Result

from conftest import make_workspace
from newsletter_mailer.cli import main
from newsletter_mailer.compose.dkim import generate_key, write_key
from smtp_servers import Received, SMTPTestServer

PAIR = generate_key("sel", "example.org")


def cli(root: Path, *args: str) -> Result:
    """The command as an editor runs it in the workspace ``root``."""
    with contextlib.chdir(root):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_list(root: Path, text: str) -> None:
    (root / "subscribers.csv").write_text(text, encoding="utf-8")


def parse(received: Received) -> EmailMessage:
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_lines(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def assert_headers_well_formed(data: bytes) -> None:
    """No bare CR or LF in any header, continuation lines folded, no line over 998 octets."""
    lines = header_lines(data)
    for number, line in enumerate(lines):
        assert b"\r" not in line and b"\n" not in line, line
        assert len(line) <= 998, (len(line), line[:80])
        if number and not line[:1].isspace():
            assert b":" in line, line


def raw_header(data: bytes, name: str) -> str:
    """A header's value as sent, unfolded and decoded as RFC 2047 says (whitespace between
    adjacent encoded-words dropped; Python's own address parser keeps it, mail clients do not)."""
    message = email.message_from_bytes(data, policy=policy.compat32)
    raw = str(message[name]).replace("\r\n", "").replace("\n", "")
    return str(make_header(decode_header(raw)))


def add_dkim(root: Path) -> None:
    write_key(PAIR, root / "dkim.pem")
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n')


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


def encoded_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


PAYLOAD = (
    "x\r\nReply-To: thief@attacker.example\r\nBcc: victim@example.net\r\n"
    "Content-Type: text/html\r\n\r\n<h1>Your account is closed</h1>"
)


# 1. Header injection through encoded-words, with DKIM on.


@pytest.mark.parametrize("name", [encoded_word(PAYLOAD), "=?utf-8?q?x=0D=0ABcc:_victim@example.net?=", PAYLOAD])
def test_an_encoded_word_name_is_only_text_in_signed_mail(tmp_path: Path, name: str) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        add_dkim(root)
        (root / "issue.md").write_text(
            '---\nsubject: "{{ subscriber.name }}, your news"\n---\nDear {{ subscriber.name }},\n\nNews.\n'
        )
        quoted = name.replace('"', '""')
        write_list(root, f'email,name\nmallory@example.org,"{quoted}"\nann@example.org,Ann\n')
        result = cli(root, "send", "issue.md", "--yes")
        assert result.exit_code == 0, result.output
    assert len(server.handler.messages) == 2
    for received in server.handler.messages:
        assert received.rcpt_tos in (("mallory@example.org",), ("ann@example.org",))
        assert_headers_well_formed(received.data)
        assert dkimpy.verify(received.data, dnsfunc=dns)
        message = parse(received)
        assert message["Reply-To"] is None and message["Bcc"] is None
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        html = message.get_body(("html",))
        assert html is not None and "<h1>Your account" not in html.get_content()
    mallory = parse(next(m for m in server.handler.messages if m.rcpt_tos == ("mallory@example.org",)))
    shown = " ".join(name.replace("\r", " ").replace("\n", " ").split())
    assert " ".join(str(mallory["Subject"]).split()) == f"{shown}, your news"
    assert mallory["To"].addresses[0].addr_spec == "mallory@example.org"
    assert raw_header(mallory.as_bytes(), "To") == f"{shown} <mallory@example.org>"


# 6. Long values are folded: no header line over 998 characters.


def test_a_ten_kilobyte_name_is_folded_and_delivered(tmp_path: Path) -> None:
    long_name = "Anna " + "Maria-Theresia " * 700 + "Ölund"
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        write_list(root, f"email,name\nanna@example.org,{long_name}\nbob@example.org,{'B' * 5000}\n")
        result = cli(root, "send", "issue.md", "--yes")
        assert result.exit_code == 0, result.output
    assert len(server.handler.messages) == 2
    for received in server.handler.messages:
        assert_headers_well_formed(received.data)
        assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
        message = parse(received)
        expected = long_name.strip() if received.rcpt_tos == ("anna@example.org",) else "B" * 5000
        assert raw_header(received.data, "To") == f"{expected} <{received.rcpt_tos[0]}>"
        assert message["To"].addresses[0].addr_spec == received.rcpt_tos[0]
        assert str(message["Subject"]) == f"Hello {expected}"
