"""bounces.py: each real-shaped report ends in the right category; status codes; the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter_mailer.audience.bounces import MAX_REPORT_BYTES, Action, Category, Policy, classify_status, parse_report

REPORTS = Path(__file__).parent / "bounce_reports"


@pytest.mark.parametrize(
    ("name", "category", "recipient", "status"),
    [
        ("postfix-user-unknown.eml", Category.HARD, "gone@example.org", "5.1.1"),
        ("exim-no-dsn.eml", Category.HARD, "left.long.ago@example.org", "5.1.1"),
        ("gmail-mailbox-full.eml", Category.SOFT, "full.inbox@example.org", "5.2.2"),
        ("outlook-recipient-not-found.eml", Category.HARD, "nobody.here@example.org", "5.1.10"),
        ("qmail-no-dsn.eml", Category.HARD, "no.such.user@example.com", "5.1.1"),
        ("arf-complaint.eml", Category.COMPLAINT, "annoyed@example.org", ""),
        ("vacation-reply.eml", Category.AUTO_REPLY, None, ""),
        ("postfix-delayed.eml", Category.DELAYED, None, ""),
    ],
)
def test_each_report_is_read_for_its_category_recipient_and_status(
    name: str, category: Category, recipient: str | None, status: str
) -> None:
    report = parse_report((REPORTS / name).read_bytes())
    assert report.category is category
    assert report.recipients[:1] == ((recipient,) if recipient else ())
    assert report.status == status
    assert "\n" not in report.diagnostic and "\r" not in report.diagnostic


def test_the_remote_servers_words_are_kept_on_one_line() -> None:
    report = parse_report((REPORTS / "postfix-user-unknown.eml").read_bytes())
    assert report.diagnostic == (
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
    )


@pytest.mark.parametrize(
    ("status", "diagnostic", "category"),
    [
        ("5.1.1", "", Category.HARD),
        ("5.1.10", "", Category.HARD),
        ("5.2.1", "", Category.HARD),
        ("5.2.2", "", Category.SOFT),
        ("4.2.2", "", Category.SOFT),
        ("4.4.7", "", Category.SOFT),
        ("5.7.1", "blocked as spam", Category.POLICY),
        ("5.7.515", "DMARC policy of the sender's domain", Category.POLICY),
        ("5.4.1", "no answer from host", Category.POLICY),
        ("", "550 no such user here", Category.HARD),
        ("", "service unavailable", Category.SOFT),
        ("5.1.8", "Sender address rejected: Domain not found", Category.POLICY),
        ("5.1.7", "bad sender's mailbox address syntax", Category.POLICY),
        ("4.1.8", "", Category.POLICY),
        ("5.1.0", "550 5.1.0 <bounces@news.example.org>: Sender address rejected", Category.POLICY),
        ("", "550 <bounces@news.example.org>: Sender address rejected: Domain not found", Category.POLICY),
        ("5.5.2", "syntax error", Category.POLICY),
        ("5.6.1", "media not supported", Category.POLICY),
        ("4.7.1", "greylisted", Category.POLICY),
    ],
)
def test_status_codes_are_classified(status: str, diagnostic: str, category: Category) -> None:
    assert classify_status(status, diagnostic) is category


def test_policy_hard_and_complaint_at_once_soft_after_the_threshold() -> None:
    policy = Policy(soft_threshold=3)
    assert policy.decide(Category.HARD, 0) is Action.SUPPRESSED
    assert policy.decide(Category.COMPLAINT, 0) is Action.SUPPRESSED
    assert policy.decide(Category.SOFT, 2) is Action.COUNTED
    assert policy.decide(Category.SOFT, 3) is Action.SUPPRESSED
    assert policy.decide(Category.POLICY, 99) is Action.IGNORED  # a policy refusal never suppresses
    assert policy.decide(Category.AUTO_REPLY, 9) is Action.IGNORED
    assert policy.decide(Category.DELAYED, 9) is Action.IGNORED
    assert policy.decide(Category.UNKNOWN, 0) is Action.UNRECOGNISED
    assert policy.decide(Category.UNREADABLE, 0) is Action.QUARANTINED


def test_a_report_of_a_sender_side_refusal_names_the_reader_but_is_policy() -> None:
    data = (REPORTS / "postfix-user-unknown.eml").read_bytes()
    data = data.replace(b"5.1.1", b"5.1.8").replace(b"Recipient address", b"Sender address")
    assert parse_report(data).category is Category.POLICY
    qmail = (REPORTS / "qmail-no-dsn.eml").read_bytes()
    words = qmail.replace(b"550 5.1.1 <no.such.user@example.com>... No such user", b"553 sender address rejected")
    assert parse_report(words).category is Category.POLICY


def nested(depth: int, kind: bytes = b"multipart/mixed") -> bytes:
    return b"".join(b'Content-Type: %s; boundary="b%d"\n\n--b%d\n' % (kind, i, i) for i in range(depth))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"Subject: x\n" + nested(3000), "more than 40 nested multipart or message parts"),
        (b"Subject: x\n" + nested(41, b"message/rfc822"), "more than 40 nested"),
        (b"Subject: x\n" + nested(5000, b"Multipart/Mixed"), "more than 40 nested"),
        (
            b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
            + b"--b\nContent-Type: text/plain\n\nx\n" * 401,
            "more than 400 parts",
        ),
        (b"Subject: x\n\n" + b"x" * (MAX_REPORT_BYTES + 1), "larger than 10 MB"),
    ],
    ids=["3000 nested", "41 messages", "5000 nested, mixed case", "401 parts", "too large"],
)
def test_a_report_too_deep_wide_or_big_is_unreadable_with_the_reason(data: bytes, reason: str) -> None:
    report = parse_report(data)
    assert report.category is Category.UNREADABLE and reason in report.diagnostic and report.recipients == ()


@pytest.mark.parametrize("charset", ["x-bogus", "utf-8\0", "base64", "rot13", "a" * 100, "utf-8''%ff"])
def test_a_charset_python_does_not_know_is_read_as_utf8(charset: str) -> None:
    qmail = (REPORTS / "qmail-no-dsn.eml").read_bytes()
    header = b'MIME-Version: 1.0\nContent-Type: text/plain; charset="' + charset.encode() + b'"\n'
    report = parse_report(qmail.replace(b"Subject: failure notice\n", b"Subject: failure notice\n" + header))
    assert (report.category, report.recipients, report.status) == (
        Category.HARD,
        ("no.such.user@example.com",),
        "5.1.1",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\n\nAction: failed\n\n--x--\n",
        b"Subject: hello\n\nJust a person writing to the bounce address.\n",
        b"Content-Type: message/feedback-report\n\nFeedback-Type: abuse\n",
    ],
    ids=["empty", "binary", "dsn-without-recipient", "a-letter", "arf-without-recipient"],
)
def test_hostile_or_broken_messages_never_raise_and_name_nobody(data: bytes) -> None:
    report = parse_report(data)
    assert report.recipients == ()
    assert report.category in (Category.UNKNOWN, Category.COMPLAINT, Category.SOFT)
