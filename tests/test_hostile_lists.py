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


# 2. A stray quote cannot swallow the list.


def numbered_rows(count: int) -> list[str]:
    return [f"u{i}@example.org,Member {i},Town {i}" for i in range(count)]


def test_an_unclosed_quote_refuses_the_list_before_anything_is_sent(tmp_path: Path) -> None:
    rows = numbered_rows(1000)
    rows[10] = 'u10@example.org,Dan,"Paris'  # line 12, with the header on line 1
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        write_list(root, "email,name,city\n" + "\n".join(rows) + "\n")
        sent = cli(root, "send", "issue.md", "--yes")  # reading the list (once) refuses it
        forced = cli(root, "send", "issue.md", "--yes", "--force")  # --force does not change that
        checked = cli(root, "subscribers", "check")
        dry = cli(root, "send", "issue.md", "--dry-run", "--force")
    assert server.handler.messages == []
    for result in (sent, forced, checked, dry):
        assert result.exit_code == 2, result.output
        assert "subscribers.csv:12: error: unclosed quote" in result.output
    for result in (sent, forced, checked, dry):
        assert "Traceback" not in result.output and "to send now" not in result.output
    assert cli(root, "status").output == "nothing sent yet\n"  # nothing left pending either


def test_a_quoted_field_over_two_lines_still_works(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        (root / "issue.md").write_text("---\nsubject: News\n---\nWe post to {{ subscriber.address }}.\n")
        write_list(
            root,
            'email,name,address\nann@example.org,Ann,"12 Mill Lane\nRiverton, RV1 2AB"\n'
            'bob@example.org,Bob,"1 Main St"\n',
        )
        result = cli(root, "send", "issue.md", "--yes")
        assert result.exit_code == 0, result.output
    assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == ["ann@example.org", "bob@example.org"]
    ann = parse(next(m for m in server.handler.messages if m.rcpt_tos == ("ann@example.org",)))
    text = ann.get_body(("plain",))
    assert text is not None and "We post to 12 Mill Lane Riverton, RV1 2AB." in text.get_content()


# 3. Addresses that differ only in case are one subscriber everywhere.


def test_case_variants_are_one_subscriber_in_send_journal_suppression_and_status(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        write_list(root, "email,name\nMaria@Example.NET,Maria\nmaria@example.net,M\nMARIA@EXAMPLE.NET,MM\n")
        result = cli(root, "send", "issue.md", "--yes")
        assert result.exit_code == 0, result.output
        assert "subscribers.csv:3: maria@example.net is a duplicate of line 2" in result.output
        assert "subscribers.csv:4: MARIA@example.net is a duplicate of line 2" in result.output
        assert len(server.handler.messages) == 1
        assert server.handler.messages[0].rcpt_tos == ("Maria@example.net",)
        assert parse(server.handler.messages[0])["To"] == "Maria <Maria@example.net>"
        write_list(root, "email,name\nmaria@EXAMPLE.net,Maria\n")
        again = cli(root, "send", "issue.md", "--yes")
        assert "nothing to send" in again.output and len(server.handler.messages) == 1
        assert "sent 1, pending 0" in cli(root, "status", "issue.md").output
        assert cli(root, "unsubscribe", "MARIA@example.net").exit_code == 0
        (root / "issue2.md").write_text((root / "issue.md").read_text())
        other = cli(root, "send", "issue2.md", "--yes")
        assert "nothing to send" in other.output and len(server.handler.messages) == 1
        checked = cli(root, "subscribers", "check")
        assert "0 would be mailed, 1 is unsubscribed" in checked.output


# 8. A byte that is not UTF-8 is reported on its own line.


def test_a_bad_byte_is_reported_on_its_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 0)
    rows = [row.encode() for row in numbered_rows(6000)]
    rows[5000] = b"u5000@example.org,Ren\xe9,Town"  # line 5002
    (root / "subscribers.csv").write_bytes(b"email,name,city\n" + b"\n".join(rows) + b"\n")
    result = cli(root, "subscribers", "check")
    assert result.exit_code == 2
    assert (
        "subscribers.csv:5002: error: not UTF-8 text (invalid continuation byte at byte 22 of the line)"
        in result.output
        and "Traceback" not in result.output
    )
    (root / "subscribers.csv").write_bytes("email,name\na@example.org,A\n".encode("utf-16"))
    result = cli(root, "subscribers", "check")
    assert result.exit_code == 2 and "subscribers.csv:1: error: the list is UTF-16 text" in result.output


# 5. An expression that fails for one row stops the send before it starts, or fails only that row.


def test_a_row_that_cannot_be_filled_is_found_before_sending_and_fails_alone(tmp_path: Path) -> None:
    rows = numbered_rows(200)
    rows[197] = "u197@example.org,,Town"  # line 199
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        (root / "issue.md").write_text("---\nsubject: News\n---\nHello {{ subscriber.name.split()[0] }},\n\nNews.\n")
        write_list(root, "email,name,city\n" + "\n".join(rows) + "\n")
        checked = cli(root, "check", "issue.md")
        assert checked.exit_code == 1
        assert (
            "subscribers.csv:199: error: issue.md:4: merge field {{ subscriber.name.split()[0] }} "
            "cannot be filled: this row has no value for 'name'"
        ) in checked.output
        refused = cli(root, "send", "issue.md", "--yes")
        assert refused.exit_code == 1 and "pre-send check found errors" in refused.output
        assert server.handler.messages == []
        forced = cli(root, "send", "issue.md", "--yes", "--force")
        assert forced.exit_code == 1 and "sent 199, failed 1" in forced.output, forced.output
        again = cli(root, "send", "issue.md", "--yes", "--force")
        assert again.exit_code == 1 and "nothing to send" in again.output
        status = cli(root, "status", "issue.md")
    assert len(server.handler.messages) == 199
    assert "u197@example.org" not in {m.rcpt_tos[0] for m in server.handler.messages}
    assert "failed u197@example.org after 1 attempt(s): the message cannot be filled in:" in status.output
    for result in (checked, refused, forced, again, status):
        assert "Traceback" not in result.output


# 4. A merge field that is no column of the list is an error naming file, line and columns.


def test_a_mistyped_merge_field_is_an_error_naming_the_columns(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        (root / "issue.md").write_text(
            "---\nsubject: News\n---\nHello {{ subscriber.nmae }},\n\n"
            'Dear {{ subscriber.frist_name | default("friend") }} in {{ subscriber["city"] }}.\n'
        )
        write_list(root, "email,name,city\nann@example.org,Ann,Riverton\n")
        checked = cli(root, "check", "issue.md")
        sent = cli(root, "send", "issue.md", "--yes")
        (root / "subscribers.csv").unlink()
        without = cli(root, "check", "issue.md")
    assert server.handler.messages == []
    columns = "its columns: email, name, city"
    for result in (checked, sent):
        assert result.exit_code == 1
        assert "issue.md:4: error: merge field {{ subscriber.nmae }}: 'nmae' is no column of" in result.output
        assert "subscribers.csv; " + columns in result.output
        assert "issue.md:6: error: merge field {{ subscriber.frist_name | default(\"friend\") }}: 'frist_name'" in (
            result.output
        )
        assert "'city' is no column" not in result.output
    assert without.exit_code == 0
    assert "issue.md: warning: could not check the merge fields: there is no subscriber list at" in without.output


# Also: --as ADDRESS shows exactly the message that address would get.


def test_dry_run_and_render_as_an_address_fill_in_its_row(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        add_dkim(root)
        (root / "issue.md").write_text(
            "---\nsubject: News for {{ subscriber.name }}\n---\nHello {{ subscriber.name }} in {{ subscriber.city }}.\n"
        )
        write_list(root, "email,name,city\nann@example.org,Ann,Riverton\nbob@example.org,Bob,Millbrook\n")
        shown = cli(root, "send", "issue.md", "--dry-run", "--as", "BOB@example.org")
        assert shown.exit_code == 0, shown.output
        assert server.handler.messages == []
        rendered = cli(root, "render", "issue.md", "--as", "ann@example.org")
        missing = cli(root, "send", "issue.md", "--dry-run", "--as", "carol@example.org")
        typo = cli(root, "send", "issue.md", "--dry-run", "--as", "not an address")
        alone = cli(root, "send", "issue.md", "--as", "ann@example.org", "--yes")
    data = shown.stdout_bytes
    assert dkimpy.verify(data, dnsfunc=dns)
    message = email.message_from_bytes(data, policy=policy.default)
    assert message["To"] == "Bob <bob@example.org>" and message["Subject"] == "News for Bob"
    text = message.get_body(("plain",))
    assert text is not None and "Hello Bob in Millbrook." in text.get_content()
    assert rendered.exit_code == 0, rendered.output
    assert typo.exit_code == 2 and typo.output.startswith("error: --as 'not an address' is not a valid address")
    eml = email.message_from_bytes((root / "build" / "issue.eml").read_bytes(), policy=policy.default)
    assert eml["To"] == "Ann <ann@example.org>"
    assert "Hello Ann in Riverton." in (root / "build" / "issue.txt").read_text()
    assert missing.exit_code == 2 and "subscribers.csv: error: carol@example.org is not in the list" in missing.output
    assert alone.exit_code == 2 and "--as goes with --dry-run" in alone.output
    assert server.handler.messages == []


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("email,email,name", "two 'email' columns"),
        ("email,name,Name", "two 'name' columns"),
        ("email,Home town,home_town", "both become the merge field subscriber.home_town"),
    ],
)
def test_two_columns_that_would_be_one_field_refuse_the_list(tmp_path: Path, header: str, fragment: str) -> None:
    """Otherwise one of them is dropped without a word (b@example.org never mailed)."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 1)
        write_list(root, f"{header}\na@example.org,b@example.org,A\n")
        checked = cli(root, "subscribers", "check")
        assert checked.exit_code == 2 and "subscribers.csv:1: error: the header has" in checked.output
        assert fragment in checked.output
        sent = cli(root, "send", "issue.md", "--yes", "--force")
        assert sent.exit_code == 2 and fragment in sent.output
    assert server.handler.messages == []


def test_a_list_value_that_is_no_link_where_a_link_goes_is_a_warning_with_its_row(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 1)
        (root / "issue.md").write_text("---\nsubject: Links\n---\nSee [your page]({{ subscriber.site }}).\n")
        write_list(
            root, "email,name,site\na@example.org,A,https://example.org/a\nb@example.org,B,javascript:alert(1)\n"
        )
        checked = cli(root, "check", "issue.md")
        shown = cli(root, "send", "issue.md", "--dry-run", "--as", "b@example.org")
    assert "subscribers.csv:3: warning: {{ subscriber.site }} is 'javascript:alert(1)' here" in checked.output
    assert "subscribers.csv:2:" not in checked.output
    html = email.message_from_bytes(shown.stdout_bytes, policy=policy.default).get_body(("html",))
    assert html is not None and "javascript" not in html.get_content() and 'href=""' in html.get_content()
