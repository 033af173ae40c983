"""headers.py: hostile values become text only, folded within RFC 5322's line limits."""

from __future__ import annotations

import email
import random
from email import errors, policy
from email.header import decode_header, make_header
from email.headerregistry import Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter_mailer.compose.headers import mailbox, unstructured

ALPHABET = "aZ 09.,;:\"'\\<>()=?_-\r\n\t\x00\x7féßЖ中😀\u2028"


def decoded(value: bytes) -> str:
    return str(make_header(decode_header(value.decode("ascii").replace("\r\n", ""))))


def one_line(text: str) -> str:
    return "".join(" " if c in "\r\n\t\x00\x7f\u2028" else c for c in text)


def random_texts(count: int) -> list[str]:
    rng = random.Random(9)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.choice((1, 5, 40, 90, 400, 3000)))) for _ in range(count)]


@pytest.mark.parametrize("text", random_texts(300))
def test_any_text_round_trips_without_bare_cr_lf_or_long_lines(text: str) -> None:
    for value in (unstructured("Subject", text), mailbox("To", text, "a@example.org")):
        assert value.isascii()
        lines = (b"Subject: " + value).split(b"\r\n")
        assert all(b"\r" not in line and b"\n" not in line for line in lines)
        assert all(line[:1] == b" " for line in lines[1:])
        assert max(len(line) for line in lines) <= 998
    assert " ".join(decoded(unstructured("Subject", text)).split()) == " ".join(one_line(text).split())


def test_an_encoded_word_is_encoded_as_the_text_it_is() -> None:
    value = unstructured("Subject", "=?utf-8?b?QQ0KQmNjOiB4?=")
    assert b"QQ0KQmNjOiB4" not in value
    assert decoded(value) == "=?utf-8?b?QQ0KQmNjOiB4?="


def test_plain_text_stays_readable_and_long_text_is_folded_at_spaces() -> None:
    assert unstructured("Subject", "Hello Ann, your news") == b"Hello Ann, your news"
    words = " ".join(f"word{i}" for i in range(60))
    folded = unstructured("Subject", words)
    assert b"=?" not in folded and folded.replace(b"\r\n", b"") == words.encode()
    assert all(len(line) <= 78 for line in (b"Subject: " + folded).split(b"\r\n"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", b"<a@example.org>"),
        ("Ada", b"Ada <a@example.org>"),
        ('Bob "B" & Co', b'"Bob \\"B\\" & Co" <a@example.org>'),
        ("J. Smith", b'"J. Smith" <a@example.org>'),
    ],
)
def test_mailbox(name: str, expected: bytes) -> None:
    assert mailbox("To", name, "a@example.org") == expected


ADDRESSES = ["ada@example.org", "o'brien+news@example.org", "a@xn--bcher-kva.de", "Hélène.Dupont@example.fr"]
PIECES = st.sampled_from([*ALPHABET, "=?utf-8?q?", "=?utf-8?b?", "?=", "=0D=0A", "DQo", "Bcc: x@evil.example", "<a@b>"])
HOSTILE = st.lists(PIECES, max_size=120).map("".join)


def strict_mailbox(label: str, value: bytes) -> Address:
    """The one mailbox Python's strict parser (policy.default) reads from a header line. A header
    with a UTF-8 address (RFC 6532, sent with SMTPUTF8) is read as the text it is; the parser's
    one remark on it, a non-ASCII local part, is what RFC 6532 allows."""
    line = f"{label}: ".encode() + value + b"\r\n\r\n"
    message = email.message_from_string(line.decode("utf-8"), policy=policy.default)
    header = message[label]
    utf8 = (errors.NonASCIILocalPartDefect,) if not value.isascii() else ()
    assert all(isinstance(d, utf8) for d in header.defects) and message.defects == [], header.defects
    assert len(header.groups) == 1 and header.groups[0].display_name is None
    [address] = header.addresses
    assert isinstance(address, Address)
    return address


@settings(max_examples=300, deadline=None)
@given(label=st.sampled_from(["From", "To", "Reply-To", "Sender"]), name=HOSTILE, address=st.sampled_from(ADDRESSES))
def test_every_address_header_is_exactly_one_mailbox_to_the_strict_parser(label: str, name: str, address: str) -> None:
    parsed = strict_mailbox(label, mailbox(label, name, address))
    assert parsed.addr_spec == address
    # Without spaces: Python's parser (before CPython gh-128110) keeps the folding between two
    # encoded-words, which RFC 2047 6.2 and mail clients drop.
    assert "".join(parsed.display_name.split()) == "".join(one_line(name).split())


@pytest.mark.parametrize("address", ["a@example.org\r\nBcc: x@evil.example", "a@example.org>, <x@evil.example", "<"])
def test_an_address_that_would_end_the_header_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not an address"):
        mailbox("To", "Ada", address)


def test_feedback_id_fields_cannot_gain_or_lose_a_colon() -> None:
    from newsletter_mailer.compose.headers import feedback_id

    assert feedback_id("2026-12", "river-news.example.org", "newsletter", "RiverNews") == (
        b"2026-12:river-news.example.org:newsletter:RiverNews"
    )
    hostile = feedback_id("a:b\r\nBcc: x@example.org", "=?utf-8?b?QQ==?=", "x" * 300, "S")
    assert b"\r" not in hostile and b"\n" not in hostile
    fields = hostile.decode("ascii").split(":")
    assert len(fields) == 4 and fields[0] == "a-b-Bcc-x-example.org"
    assert len(fields[2]) == 64 and fields[3] == "S"
