"""transport.py: outcome classification by RFC 5321; envelopes never need dot-stuffing."""

from __future__ import annotations

import re

import pytest

from newsletter_mailer.send.transport import Kind, classify


@pytest.mark.parametrize(
    ("code", "kind", "reset"),
    [
        (250, Kind.SENT, False),
        (421, Kind.TEMPORARY, True),
        (451, Kind.TEMPORARY, False),
        (452, Kind.TEMPORARY, False),
        (550, Kind.PERMANENT, False),
        (554, Kind.PERMANENT, False),
    ],
)
def test_classify_follows_rfc_5321(code: int, kind: Kind, reset: bool) -> None:
    result = classify(code, "reply")
    assert result.kind is kind and result.reset_connection is reset


@pytest.mark.parametrize(
    ("code", "message", "hard"),
    [
        (550, "5.1.1 no such user", True),
        (551, "user not local", True),
        (553, "bad mailbox", True),
        (554, "5.1.2 bad destination", True),
        (552, "5.2.2 mailbox full", False),
        (554, "5.7.1 spam", False),
        (451, "4.1.1 try later", False),
    ],
)
def test_hard_bounces(code: int, message: str, hard: bool) -> None:
    assert classify(code, message).hard_bounce is hard


def test_envelopes_never_need_dot_stuffing() -> None:
    from newsletter_mailer.compose.envelope import qp, qp_value

    encoded = qp(".starts with a dot\n" + "x" * 72 + ".and a wrapped dot\n.\n")
    assert not encoded.startswith(b".") and b"\n." not in encoded
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    value = qp_value("." + "a" * 72 + ".b" + "c" * 80)
    assert not value.startswith(b".") and b"\n." not in value
    assert all(len(line) <= 76 for line in value.split(b"\r\n"))
    import quopri

    assert quopri.decodestring(value) == ("." + "a" * 72 + ".b" + "c" * 80).encode()
    assert re.fullmatch(rb"[ -~\r\n]*", encoded)
