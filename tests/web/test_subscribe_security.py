"""subscribe.py against an attacker, under a real uvicorn server with a recording SMTP relay and
DKIM on: names that try to inject headers or parts into the confirmation mail."""

from __future__ import annotations

import base64
import email
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim as dkimpy
import httpx
import pytest

from conftest import free_port, make_workspace, serve_asgi
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import Received, SMTPTestServer

PAIR = generate_key("sel", "example.org", bits=1024)


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


def encoded_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


class Site:
    def __init__(self, base: str, settings: Settings, server: SMTPTestServer) -> None:
        self.base, self.settings, self.server = base, settings, server

    def post(self, **form: str) -> httpx.Response:
        return httpx.post(f"{self.base}/subscribe", data=form)

    def mails_to(self, address: str, count: int = 1, wait: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + wait
        while True:
            found = [m for m in self.server.handler.messages if address in m.rcpt_tos]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@contextmanager
def running_site(root: Path, settings_text: str = "", *, dkim: bool = True) -> Iterator[Site]:
    """The pages under uvicorn, mailing through a recording relay, with DKIM on by default."""
    with SMTPTestServer() as server:
        make_workspace(root, server.port, 1)
        extra = settings_text
        if dkim:
            write_key(PAIR, root / "dkim.pem")
            extra += '\n[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n'
        port = free_port()
        text = (root / "newsletter.toml").read_text() + extra
        text = text.replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        (root / "newsletter.toml").write_text(text)
        settings = load_settings(workspace=root)
        with serve_asgi(create_app(settings), port) as base:
            yield Site(base, settings, server)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path / "ws", "[signup]\nper_ip_per_hour = 100\n") as running:
        yield running


PAYLOAD = (
    "x\r\nReply-To: thief@attacker.example\r\nBcc: victim@example.net\r\n"
    "Content-Type: text/html\r\n\r\n<h1>Your account is closed</h1>"
)
ISSUE_PAYLOAD = (
    "x\r\nSubject: Your account is suspended\r\nReply-To: help@evil.example\r\n"
    "Content-Type: text/html\r\n\r\n<h1>Log in at https://evil.example</h1>"
)
# Every injection form tried against the newsletter's headers (test_hostile_lists.py, headers.py's
# tests), and the two from issue 20.
INJECTIONS = [
    encoded_word(PAYLOAD),
    encoded_word(ISSUE_PAYLOAD),
    "=?utf-8?q?x=0D=0ABcc:_victim@example.net?=",
    "=?utf-8?q?Ada=0D=0ABcc:_attacker@evil.example?=",
    "=?utf-8?b?QQ0KQmNjOiB4?=",
    PAYLOAD,
    "Ada\rBcc: attacker@evil.example",
    "Ada\u2028Bcc: attacker@evil.example",
    'Bob "B" <attacker@evil.example>, Eve <eve@evil.example>',
    "=?iso-8859-1?q?=0D=0ABcc=3A_attacker=40evil.example?=",
]


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_hostile_name_changes_nothing_in_the_signed_confirmation_mail(site: Site, name: str) -> None:
    answer = site.post(email="ada@example.org", name=name)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [received] = site.mails_to("ada@example.org")
    assert received.rcpt_tos == ("ada@example.org",)
    data = received.data
    head, _, body = data.partition(b"\r\n\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in head.split(b"\r\n"))
    assert dkimpy.verify(data, dnsfunc=dns)
    message = parse(data)
    for header in ("From", "To", "Subject", "Date", "Message-ID", "Content-Type"):
        assert len(message.get_all(header) or []) == 1, header
    for header in ("Bcc", "Cc", "Reply-To", "Sender", "X-Evil"):
        assert message[header] is None, header
    assert message["Subject"] == "Please confirm your subscription to Test List"
    assert [str(a) for a in message["From"].addresses] == ["Test List <news@example.org>"]
    [to] = message["To"].addresses
    assert to.addr_spec == "ada@example.org"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert b"evil.example" not in body and b"<h1>" not in body and b"attacker" not in body
