"""envelope.py: one message per recipient, filled on bytes already encoded."""

from __future__ import annotations

import email
import quopri
import re
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber, clean_value
from newsletter_mailer.compose.envelope import MessageTemplate, format_to, qp, qp_value
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings


@pytest.fixture(scope="module")
def template(example_settings: Settings) -> MessageTemplate:
    settings = example_settings
    rendered = render_issue(read_issue(REPO / "issues" / "example.md"), settings)
    return MessageTemplate(rendered, settings, signer_for(settings))


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_message_has_every_header_and_both_parts(template: MessageTemplate) -> None:
    envelope = template.envelope(Subscriber("ada@example.org", "Ada Lovelace"))
    message = parse(envelope.data)
    assert message["From"] == "Riverside Volunteers <news@example.org>"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["Reply-To"] == "coordinator@example.org"
    assert message["Subject"] == "Riverside Volunteers: December 2026"
    assert message["Date"] and message["MIME-Version"] == "1.0"
    assert message["Message-ID"] == envelope.message_id
    assert re.fullmatch(r"<[0-9a-f]{30}@example\.org>", envelope.message_id)
    assert message["List-Id"] == "Riverside Volunteers <riverside-volunteers.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"]
    assert "<mailto:unsubscribe@example.org?subject=unsubscribe>" in unsubscribe
    assert re.search(r"<http://127\.0\.0\.1:8000/unsubscribe/[\w-]+>", unsubscribe)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert "Dear Ada Lovelace," in parts[0].get_content()
    assert 'Dear <span dir="auto">Ada Lovelace</span>,' in parts[1].get_content()


def test_no_line_exceeds_998_octets_and_line_ends_are_crlf(template: MessageTemplate) -> None:
    long_name = "Ü" * 400
    data = template.envelope(Subscriber("ada@example.org", long_name)).data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 78
    assert "Dear " + long_name + "," in parse(data).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_each_recipient_gets_own_token_and_message_id(template: MessageTemplate) -> None:
    a = parse(template.envelope(Subscriber("a@example.org")).data)
    b = parse(template.envelope(Subscriber("b@example.org")).data)
    assert a["Message-ID"] != b["Message-ID"]
    assert a["List-Unsubscribe"] != b["List-Unsubscribe"]
    token_a = re.search(r"/unsubscribe/([\w-]+)", a["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    assert token_a in a.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert token_a in a.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "a@example.org" not in token_a


def test_resent_copy_keeps_its_message_id(template: MessageTemplate) -> None:
    first = template.envelope(Subscriber("a@example.org")).message_id
    assert template.envelope(Subscriber("a@example.org")).message_id == first


def test_a_message_id_gives_no_address_away_without_the_workspace_secret(
    template: MessageTemplate, example_settings: Settings
) -> None:
    import hashlib

    from newsletter_mailer.audience.links import TokenSigner

    message_id = template.envelope(Subscriber("a@example.org")).message_id
    unkeyed = hashlib.blake2b(template.rendered.issue.key.encode() + b"\x00a@example.org", digest_size=15)
    assert unkeyed.hexdigest() not in message_id  # guessing the address and hashing it finds nothing
    other = MessageTemplate(template.rendered, example_settings, TokenSigner(b"another secret", "x"))
    assert other.envelope(Subscriber("a@example.org")).message_id != message_id
    assert other.envelope(Subscriber("a@example.org")).message_id == other.message_id("a@example.org")


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.org", "Eve\nX-Evil: 1", "Eve\rX: y"])
def test_cr_lf_in_a_name_cannot_inject_a_header(template: MessageTemplate, name: str) -> None:
    data = template.envelope(Subscriber("eve@example.org", clean_value(name))).data
    headers = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers and b"\r\nX-Evil" not in headers and b"\r\nX:" not in headers
    message = parse(data)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["To"].addresses[0].addr_spec == "eve@example.org"
    # the envelope neutralises control characters itself too, whatever the caller passed
    raw = template.envelope(Subscriber("eve@example.org", name)).data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in raw and b"\r\nX-Evil" not in raw


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "<a@example.org>"),
        ("Ada", "Ada <a@example.org>"),
        ('Bob "B" & Co', '"Bob \\"B\\" & Co" <a@example.org>'),
        ("J. Smith", '"J. Smith" <a@example.org>'),
    ],
)
def test_format_to(name: str, expected: str) -> None:
    assert format_to(name, "a@example.org") == expected


def test_non_ascii_name_is_rfc2047_encoded(template: MessageTemplate) -> None:
    data = template.envelope(Subscriber("zoe@example.org", "Zoë Åström")).data
    assert data.split(b"\r\n\r\n")[0].isascii()
    assert parse(data)["To"].addresses[0].display_name == "Zoë Åström"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200))
def test_a_value_in_quoted_printable_reads_back_whole_and_fits_its_lines(value: str) -> None:
    """qp_value's shortcuts (plain ASCII as it is, "=" as =3D) against the whole encoder, qp():
    the same text back, no line over 76 octets, none starting with a period, and where qp()
    needs one line the shortcut gives its very bytes (but for a space at the end, which qp()
    writes =20 as it would end a line: in a slot a soft line break follows it)."""
    encoded = qp_value(value)
    expected = value.replace("\r", " ").replace("\n", " ")
    assert quopri.decodestring(encoded).decode("utf-8") == expected
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert not encoded.startswith(b".") and b"\n." not in encoded
    reference = qp(expected)
    if b"\r\n" not in reference and value.isascii() and value.isprintable() and not value.endswith(" "):
        assert encoded == reference


@pytest.mark.parametrize("value", ['<span dir="auto">Ada</span>', "a=b", "=" * 24, "=" * 25, "." + "=" * 30])
def test_equals_signs_take_the_shortcut_only_where_it_gives_qps_bytes(value: str) -> None:
    assert quopri.decodestring(qp_value(value)).decode() == value
    if len(value.replace("=", "=3D")) <= 73 and not value.startswith("."):
        assert qp_value(value) == qp(value) == value.replace("=", "=3D").encode()
