"""subscribe.py against an attacker, under a real uvicorn server with a recording SMTP relay and
DKIM on: names that try to inject headers or parts into the confirmation mail."""

from __future__ import annotations

import base64
import contextlib
import email
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim as dkimpy
import httpx
import pytest
from click.testing import CliRunner

from conftest import free_port, make_workspace, serve_asgi
from newsletter_mailer.cli import main
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


# Issue 20 item 7: the form cannot mail-bomb one mailbox, and X-Forwarded-For is read only
# through a trusted proxy.

GMAIL_VARIANTS = ["v.ictim", "vi.ctim", "vic.tim", "vict.im", "victi.m", "v.i.c.t.i.m", "VICTIM", "victim+a"]


def post_from(site: Site, address: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return httpx.post(f"{site.base}/subscribe", data={"email": address}, headers=headers)


def recipients(site: Site, domains: tuple[str, ...], expected: int) -> list[str]:
    """The addresses at these domains mailed, once ``expected`` have arrived (or 10 s went by)
    and 0.7 s more in which a mail that should have been refused would have gone out too."""

    def mailed() -> list[str]:
        return [r for m in site.server.handler.messages for r in m.rcpt_tos if r.lower().endswith(domains)]

    deadline = time.monotonic() + 10
    while len(mailed()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)
    return mailed()


@pytest.mark.parametrize("trusted", [False, True], ids=["no-proxy", "trusted-proxy"])
def test_plus_and_dot_variants_of_one_mailbox_get_at_most_its_daily_limit(tmp_path: Path, trusted: bool) -> None:
    text = "[signup]\nper_address_per_day = 3\nper_ip_per_hour = 100\n"
    if trusted:  # rotating X-Forwarded-For then gives every post its own visitor address
        text += '[serve]\ntrusted_proxies = ["127.0.0.0/8"]\n'
    with running_site(tmp_path / "ws", text, dkim=False) as site:
        plus = [f"victim+{n}@example.net" for n in range(21)]
        dots = [f"{local}@gmail.com" for local in GMAIL_VARIANTS] + [
            "victim+x@googlemail.com",
            "vic.tim@googlemail.com",
        ]
        for n, address in enumerate(plus + dots):
            answer = post_from(site, address, f"203.0.113.{n}")
            assert answer.status_code == 200 and "Check your inbox" in answer.text
        # The limit per mailbox, each mail to the address as typed (the mails are sent after the
        # answers, on threads of their own: in any order).
        assert sorted(recipients(site, ("@example.net",), 3)) == plus[:3]
        assert len(recipients(site, ("@gmail.com", "@googlemail.com"), 3)) == 3


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    limits = "[signup]\nper_ip_per_hour = 3\n"
    with running_site(tmp_path / "plain", limits, dkim=False) as site:
        answers = [post_from(site, f"a{n}@example.org", f"198.51.100.{n}") for n in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]  # the header is not believed
    with running_site(tmp_path / "proxied", limits + '[serve]\ntrusted_proxies = ["127.0.0.1"]\n', dkim=False) as site:
        rotating = [post_from(site, f"b{n}@example.org", f"198.51.100.{n}") for n in range(4)]
        assert [a.status_code for a in rotating] == [200] * 4
        spoofed = [post_from(site, f"c{n}@example.org", f"10.9.9.{n}, 203.0.113.7") for n in range(4)]
        assert [a.status_code for a in spoofed] == [200, 200, 200, 429]  # the proxy's hop counts, not the visitor's


def test_behind_a_proxy_without_the_header_check_your_inbox_means_a_mail_is_on_its_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = '[signup]\nper_ip_per_hour = 3\n[serve]\ntrusted_proxies = ["127.0.0.1"]\n'
    with running_site(tmp_path / "ws", text, dkim=False) as site:
        answers = {f"visitor{n}@example.org": post_from(site, f"visitor{n}@example.org") for n in range(1, 6)}
        told = [a for a, r in answers.items() if "Check your inbox" in r.text]
        refused = [r for r in answers.values() if r.status_code == 429]
        assert len(told) == 3 and len(refused) == 2
        assert all("try again later" in r.text and "Check your inbox" not in r.text for r in refused)
        for address in told:
            assert site.mails_to(address)
        assert sorted(recipients(site, ("@example.org",), len(told))) == sorted(told)
    assert "carry no X-Forwarded-For" in caplog.text


# Issue 20 item 8: the answer is sent before any work, for every outcome.


@pytest.mark.parametrize("blocked", ["store", "relay"])
def test_every_outcome_is_answered_before_any_store_or_smtp_work(tmp_path: Path, blocked: str) -> None:
    text = "[signup]\nper_address_per_day = 1\nper_ip_per_hour = 100\n"
    with running_site(tmp_path / "ws", text, dkim=False) as site:
        post_from(site, "limited@example.org")
        assert site.mails_to("limited@example.org")  # its one mail a day is used
        outcomes = {
            "new": {"email": "new@example.org"},
            "subscribed": {"email": "user0@example.org"},  # in the list
            "limited": {"email": "limited@example.org"},
            "valid-looking": {"email": "nobody@no-mail-here.example.com"},
            "bot": {"email": "victim@example.org", "website": "http://spam.example"},
        }
        with holding(site, blocked):
            before = len(site.server.handler.messages)
            answers = {k: httpx.post(f"{site.base}/subscribe", data=v, timeout=20) for k, v in outcomes.items()}
            # Each answer came back while nothing could be read from the store or sent to the relay.
            assert len(site.server.handler.messages) == before
        assert len({(a.status_code, a.text) for a in answers.values()}) == 1
        for address in ("new@example.org", "user0@example.org", "nobody@no-mail-here.example.com"):
            assert site.mails_to(address), address  # the work was done, after the answers
        assert len(site.mails_to("limited@example.org", wait=0)) == 1
        assert site.mails_to("victim@example.org", wait=0) == []


@contextmanager
def holding(site: Site, what: str) -> Iterator[None]:
    """Hold the workspace database locked (every store step waits), or the relay silent."""
    if what == "store":
        db = sqlite3.connect(site.settings.database_path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    site.server.handler.faults.delay = 3.0
    try:
        yield
    finally:
        site.server.handler.faults.delay = 0.0


# Issue 20 item 8: form limits answer a page, never a 500.


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("&".join(f"f{n}=x" for n in range(21)) + "&email=a%40example.org", 413, "more than a signup needs"),
        ("&".join("email=a%40example.org" for _ in range(21)), 413, "more than a signup needs"),
        ("email=a%40example.org&name=" + "x" * 201, 400, "at most 200 characters"),
        ("email=a%40example.org&home_town=" + "%C3%A9" * 201, 400, "at most 200 characters"),
        ("email=" + "a" * 190 + "%40example.org", 400, "at most 200 characters"),
        ("email=a%40example.org&name=" + "x" * 9000, 413, "more than a signup needs"),
    ],
)
def test_too_many_fields_or_too_long_values_answer_a_page(site: Site, body: str, status: int, words: str) -> None:
    answer = httpx.post(
        f"{site.base}/subscribe", content=body.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == status and words in answer.text
    assert answer.headers["content-type"].startswith("text/html") and "Traceback" not in answer.text
    time.sleep(0.3)
    assert site.server.handler.messages == []


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ('["Website"]', "a name the form already uses"),
        ('["EMAIL"]', "a name the form already uses"),
        ('[" name "]', "a name the form already uses"),
        ('["Home town", "home-town"]', "are one field"),
        ("[" + ", ".join(f'"Field {n}"' for n in range(18)) + "]", "at most 10"),
        ('["' + "x" * 61 + '"]', "longer than 60"),
        ('["!!!"]', "no letters or digits"),
    ],
)
def test_signup_fields_that_cannot_be_a_form_are_refused_when_serve_starts(
    tmp_path: Path, fields: str, words: str
) -> None:
    root = make_workspace(tmp_path / "ws", free_port(), 1)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write(f"[signup]\nfields = {fields}\n")
    with contextlib.chdir(root):
        result = CliRunner().invoke(main, ["serve", "--port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert "[signup] fields" in result.output and words in result.output and "Traceback" not in result.output


def test_a_store_that_fails_is_said_after_the_first_signup_and_the_form_works_again_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_site(tmp_path / "ws", "[signup]\nper_ip_per_hour = 100\n", dkim=False) as site:
        assert post_from(site, "first@example.org").status_code == 200 and site.mails_to("first@example.org")
        state = site.settings.state_dir
        (state / "sent-issues").write_text("issue\t2026-12-01T00:00:00Z\n")  # the workspace has sent...
        aside = tmp_path / "aside"
        aside.mkdir()
        for path in state.glob("newsletter.db*"):  # ...and its database is gone: the store refuses
            path.rename(aside / path.name)
        lost = post_from(site, "lost@example.org")
        assert lost.status_code == 200  # answered before the store was touched
        wait_until(lambda: "lo***@example.org from 127.0.0.1 NOT recorded" in caplog.text)
        assert post_from(site, "later@example.org").status_code == 503  # and sends a probe, which fails
        time.sleep(0.5)  # (lets that probe run while the store is still away)
        assert post_from(site, "later@example.org").status_code == 503
        for path in aside.iterdir():
            path.rename(state / path.name)
        # The next answer is still 503; its probe finds the store back, and the form works again.
        wait_until(lambda: post_from(site, "back@example.org").status_code == 200)
        assert site.mails_to("back@example.org")
        assert site.mails_to("lost@example.org", wait=0) == [] and site.mails_to("later@example.org", wait=0) == []


def wait_until(condition: Callable[[], bool], wait: float = 10.0) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)
