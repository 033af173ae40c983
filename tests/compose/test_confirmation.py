"""confirmation.py: whatever a visitor types as their name, the confirmation mail has exactly the
headers and parts we wrote, its DKIM signature verifies, and the name is only text in To."""

from __future__ import annotations

import base64
import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim as dkimpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.confirmation import confirmation_envelope
from newsletter_mailer.compose.dkim import DkimSigner, generate_key, parse_key
from newsletter_mailer.config import Settings, load_settings

PAIR = generate_key("sel", "example.org", bits=1024)
SIGNER = DkimSigner([parse_key(PAIR.private_pem, "sel", "example.org")])
EXPECTED = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"]
URL = "https://lists.example.org/confirm/abc"


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


def workspace(tmp: Path, extra: str = "") -> Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "newsletter.toml").write_text(
        f'[newsletter]\nname = "Test List"\nfrom = "news@example.org"\n{extra}', encoding="utf-8"
    )
    return load_settings(workspace=tmp)


def encoded_word(text: str, q: bool = False) -> str:
    if q:
        return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode()) + "?="
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


INJECTED = st.sampled_from(
    [
        "\r\nBcc: attacker@evil.example",
        "\r\nSubject: Your account is suspended\r\nReply-To: help@evil.example",
        "\r\nContent-Type: text/html\r\n\r\n<h1>Log in at evil</h1>",
        "\nX-Evil: 1",
        "\rSender: evil@evil.example",
        "\u2028Reply-To: x@evil.example",
    ]
)
CONTROLS = st.text(alphabet=st.sampled_from("\r\n\t\x00\x0b\x0c\x1b\x7f\u2028\u2029 "), max_size=4)
PLAIN = st.text(max_size=60)


@st.composite
def hostile_names(draw: st.DrawFn) -> str:
    """Names built of text, raw CR/LF and controls, and encoded-words that decode to new headers."""
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["plain", "controls", "raw", "b-word", "q-word"]))
        if kind == "plain":
            pieces.append(draw(PLAIN))
        elif kind == "controls":
            pieces.append(draw(CONTROLS))
        elif kind == "raw":
            pieces.append(draw(PLAIN) + draw(INJECTED))
        else:
            pieces.append(encoded_word(draw(PLAIN) + draw(INJECTED), q=kind == "q-word"))
    return "".join(pieces)


def one_line(text: str) -> str:
    """What headers.py keeps of a value: C0 controls, DEL and the Unicode line breaks are spaces."""
    return " ".join("".join(" " if c < " " or c in "\x7f\u2028\u2029" else c for c in text).split())


def check_mail(data: bytes, name: str, address: str) -> EmailMessage:
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(b"\r" not in line and b"\n" not in line for line in head.split(b"\r\n"))
    assert dkimpy.verify(data, dnsfunc=dns)
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    names = [key for key in message if key != "DKIM-Signature"]
    assert names == EXPECTED, names
    assert message.defects == [] and message["From"].defects == () and message["To"].defects == ()
    [to] = message["To"].addresses
    assert to.addr_spec == address
    # Compared without spaces: Python's address parser (before CPython gh-128110) keeps the folding
    # between two encoded-words, which RFC 2047 6.2 and mail clients drop.
    assert "".join(to.display_name.split()) == "".join(one_line(name).split())
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    body = message.get_body(("plain",))
    assert body is not None and URL in body.get_content()
    return message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_names())
def test_any_name_is_text_in_a_signed_mail_with_only_our_headers(tmp_path: Path, name: str) -> None:
    envelope = confirmation_envelope(workspace(tmp_path), Subscriber("ada@example.org", name), URL, SIGNER)
    assert envelope.recipient == "ada@example.org" and envelope.sender == "news@example.org"
    check_mail(envelope.data, name, "ada@example.org")


def test_the_issue_s_examples_add_no_subject_bcc_or_part(tmp_path: Path) -> None:
    settings = workspace(tmp_path)
    for name in (
        encoded_word(
            "x\r\nSubject: Your account is suspended\r\nReply-To: help@evil.example\r\n"
            "Content-Type: text/html\r\n\r\n<h1>Log in at evil.example</h1>"
        ),
        "=?utf-8?q?Ada=0D=0ABcc:_attacker@evil.example?=",
    ):
        data = confirmation_envelope(settings, Subscriber("ada@example.org", name), URL, SIGNER).data
        message = check_mail(data, name, "ada@example.org")
        assert message["Subject"] == "Please confirm your subscription to Test List"
        assert b"evil.example" not in data.split(b"\r\n\r\n", 1)[1]
        assert message["To"].addresses[0].display_name.startswith("=?utf-8?")  # shown as typed
