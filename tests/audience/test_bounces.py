"""bounces.py: each real-shaped report ends in the right category; status codes; the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter_mailer.audience.bounces import Action, Category, Policy, classify_status, parse_report

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
