"""transport.py: outcome classification by RFC 5321; envelopes never need dot-stuffing."""

from __future__ import annotations

import asyncio
import re

import pytest

from newsletter_mailer.compose.envelope import Envelope
from newsletter_mailer.config import SMTPSettings
from newsletter_mailer.send.transport import (
    REPLY_LIMIT,
    Kind,
    Phase,
    Result,
    SMTPTransport,
    classify,
    clean_reply,
    enhanced_status,
    is_hard_bounce,
)
from smtp_servers import DROP, HANG, RawSMTPServer, Script


@pytest.mark.parametrize(
    ("code", "kind", "reset"),
    [
        (421, Kind.TEMPORARY, True),
        (451, Kind.TEMPORARY, False),
        (452, Kind.TEMPORARY, False),
        (550, Kind.PERMANENT, False),
        (554, Kind.PERMANENT, False),
    ],
)
def test_refusals_follow_rfc_5321(code: int, kind: Kind, reset: bool) -> None:
    result = classify(code, "reply")
    assert result.kind is kind and result.reset_connection is reset and not result.uncertain


@pytest.mark.parametrize(
    ("code", "phase"), [(250, Phase.DATA), (354, Phase.ENVELOPE), (-1, Phase.DATA), (999, Phase.DATA)]
)
def test_a_reply_out_of_place_is_never_sent_and_after_data_may_be_duplicated(code: int, phase: Phase) -> None:
    result = classify(code, "OK", phase)
    assert result.kind is Kind.TEMPORARY and result.reset_connection
    assert result.uncertain is (phase is Phase.DATA)
    assert "unexpected reply" in result.reply


@pytest.mark.parametrize(
    ("code", "message", "hard"),
    [
        (550, "5.1.1 <a@example.org>: no such user", True),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound", True),
        (554, "5.1.2 bad destination", True),
        (550, "5.2.1 mailbox disabled", True),
        (552, "5.2.2 mailbox full", False),
        (550, "5.7.1 Relay access denied", False),
        (550, "5.7.515 Access denied, sending domain does not meet the required authentication level", False),
        (554, "5.7.1 spam", False),
        (550, "5.3.0 system not accepting messages", False),
        (550, "5.4.1 recipient address rejected: access denied", False),
        (550, "mailbox unavailable", False),  # a bare 550 is used for policy too
        (551, "user not local", False),
        (553, "sorry, that domain isn't in my list of allowed rcpthosts", False),  # qmail's relay refusal
        (550, "4.1.1 class disagrees with the code", False),
        (451, "4.1.1 try later", False),
        (550, "5.1 half a code", False),
        # RFC 3463's X.1.7 and X.1.8 are about the sender, and so are its words under any 5.1.x code.
        (550, "5.1.8 <bounces+ab2c@news.example.org>: Sender address rejected: Domain not found", False),
        (553, "5.1.7 The sender address <bounces@news> is not a valid RFC 5321 address", False),
        (550, "5.1.0 <bounces@news.example.org>: Sender address rejected: undeliverable address", False),
        (550, "5.1.1 sender verify failed", False),
        (554, "5.6.0 message content rejected", False),
    ],
)
def test_only_a_5_1_x_or_5_2_1_is_a_hard_bounce(code: int, message: str, hard: bool) -> None:
    assert classify(code, message).hard_bounce is hard
    assert is_hard_bounce(code, message) is hard


@pytest.mark.parametrize(
    ("code", "message", "policy"),
    [
        (550, "5.1.8 Sender address rejected: Domain not found", True),
        (450, "4.1.8 <bounces@news.example.org>: Sender address rejected: Domain not found", False),  # retried
        (553, "5.1.7 bad sender", True),
        (550, "5.7.1 Relay access denied", True),
        (550, "5.4.1 access denied", True),
        (550, "5.1.1 no such user", False),
        (552, "5.2.2 mailbox full", False),
        (550, "mailbox unavailable", False),
    ],
)
def test_sender_side_and_policy_refusals_are_marked_policy(code: int, message: str, policy: bool) -> None:
    result = classify(code, message)
    assert result.policy is policy and not (result.policy and result.hard_bounce)


def test_a_relays_words_are_stored_on_one_bounded_printable_line() -> None:
    reply = clean_reply("5.1.1 bad\x1b[31m red\r\n550-second\x00 line" + "x" * 1000)
    assert "\x1b" not in reply and "\x00" not in reply and "\n" not in reply
    assert reply.startswith("5.1.1 bad?[31m red / 550-second? line") and len(reply) == REPLY_LIMIT
    assert enhanced_status(reply) == (5, 1, 1)


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


# Against a relay that misbehaves on the wire (tests/smtp_servers.py's RawSMTPServer).


def envelope(recipient: str = "reader@example.org") -> Envelope:
    data = f"From: news@example.org\r\nTo: {recipient}\r\nSubject: hi\r\n\r\nHello.\r\n".encode()
    return Envelope(sender="news@example.org", recipient=recipient, data=data, message_id="<id@example.org>")


def deliver(script: Script, *envelopes: Envelope, timeout: float = 5.0) -> tuple[list[Result], RawSMTPServer]:
    async def go(port: int) -> list[Result]:
        settings = SMTPSettings(host="127.0.0.1", port=port, security="none", timeout=timeout)
        connection = SMTPTransport(settings, local_hostname="client.test").connection()
        try:
            return [await connection.send(one) for one in envelopes or (envelope(),)]
        finally:
            await connection.close()

    with RawSMTPServer(script) as server:
        return asyncio.run(go(server.port)), server


def test_a_250_to_the_data_command_is_not_sent() -> None:
    [result], server = deliver(Script(replies={"DATA": b"250 2.0.0 OK\r\n"}))
    assert server.received == [] and result.kind is Kind.TEMPORARY and result.reset_connection
    assert "250 2.0.0 OK" in result.reply


def test_replies_out_of_order_are_never_taken_for_sent() -> None:
    # Two replies to MAIL: each later command would read the reply meant for the one before.
    [result], server = deliver(Script(replies={"MAIL": b"250 OK\r\n250 OK\r\n"}))
    assert result.kind is not Kind.SENT and server.received == []


@pytest.mark.parametrize(
    ("end", "said"),
    [(b"garbage without a code\r\n", "unexpected reply"), (DROP, "connection lost"), (HANG, "timed out")],
)
def test_an_unreadable_reply_after_the_data_is_an_uncertain_delivery(end: bytes, said: str) -> None:
    # A short timeout only where it is what the test waits for: every other reply may be slow.
    [result], server = deliver(Script(replies={"END": end}), timeout=0.5 if end == HANG else 10.0)
    assert len(server.received) == 1
    assert result.kind is Kind.TEMPORARY and result.uncertain and result.reset_connection
    assert said in result.reply


@pytest.mark.parametrize("stage", ["GREETING", "MAIL", "RCPT"])
def test_a_relay_that_hangs_before_the_data_times_out_and_nothing_is_uncertain(stage: str) -> None:
    [result], server = deliver(Script(replies={stage: HANG}), timeout=0.5)
    assert result.kind is Kind.TEMPORARY and not result.uncertain and "timed out" in result.reply
    assert server.received == []


@pytest.mark.parametrize(
    ("verb", "reply", "kind", "bounce"),
    [
        ("RCPT", b"550 5.7.1 Relay access denied\r\n", Kind.PERMANENT, False),
        ("RCPT", b"550 5.1.1 <reader@example.org>: Recipient address rejected\r\n", Kind.PERMANENT, True),
        ("RCPT", b"550 Requested action not taken\r\n", Kind.PERMANENT, False),
        ("RCPT", b"452 4.2.2 over quota\r\n", Kind.TEMPORARY, False),
        ("MAIL", b"553 5.7.1 sender rejected\r\n", Kind.PERMANENT, False),
        ("RCPT", b"550 5.1.8 <bounces@news.example.org>: Sender address rejected\r\n", Kind.PERMANENT, False),
        ("END", b"554 5.7.1 message refused as spam\r\n", Kind.PERMANENT, False),
        ("END", b"550-5.2.1 this account\r\n550 5.2.1 is disabled\r\n", Kind.PERMANENT, True),
        ("END", b"451 4.3.0 try later\r\n", Kind.TEMPORARY, False),
    ],
)
def test_a_refusal_with_any_code_is_classified_and_the_connection_carries_on(
    verb: str, reply: bytes, kind: Kind, bounce: bool
) -> None:
    if verb == "RCPT":
        script = Script(rcpt={"reader@example.org": reply})
    else:  # END refuses the first message only; MAIL refuses both
        script = Script(replies={verb: reply}, end_times=1 if verb == "END" else 0)
    results, server = deliver(script, envelope(), envelope("second@example.org"))
    first, second = results
    assert first.kind is kind and first.hard_bounce is bounce and not first.uncertain
    assert str(first).startswith(reply.decode()[:3])
    if verb != "MAIL":
        assert second.kind is Kind.SENT and str(second) == "250 2.0.0 queued"
        assert [c.split()[0] for c in server.commands].count("EHLO") == 1  # the same connection
        assert "RSET" in server.commands
