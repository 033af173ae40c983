"""headers.py: hostile values become text only, folded within RFC 5322's line limits."""

from __future__ import annotations

import random
from email.header import decode_header, make_header

import pytest

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
