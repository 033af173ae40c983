"""webhook_events.py (audience): each provider's documented events map to the bounce classes; hostile
values are cleaned, bounded or dropped, and a payload of the wrong shape maps to nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from newsletter_mailer.audience.bounces import Category
from newsletter_mailer.audience.webhook_events import EventClass, parse_events, ses_events
from newsletter_mailer.errors import WebhookError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_ses_bounce_complaint_and_transient() -> None:
    (bounce,) = ses_events(fixture("ses-bounce.json"), "n1")
    assert (bounce.kind, bounce.address, bounce.status) == (EventClass.HARD, "jane@example.com", "5.1.1")
    assert bounce.message_ids == ()  # AWS's example "custom-message-ID" has no @: not a Message-ID
    assert bounce.event_id == "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000"
    (complaint,) = ses_events(fixture("ses-complaint.json"), "n2")
    assert complaint.kind is EventClass.COMPLAINT and complaint.report().category is Category.COMPLAINT  # type: ignore[union-attr]
    (soft,) = ses_events(fixture("ses-transient.json"), "n3")
    assert soft.kind is EventClass.SOFT


@pytest.mark.parametrize(
    ("bounce_type", "subtype", "status", "kind"),
    [
        ("Permanent", "General", "5.1.1", EventClass.HARD),
        ("Permanent", "Suppressed", "", EventClass.HARD),
        ("Permanent", "ContentRejected", "5.7.1", EventClass.POLICY),
        ("Permanent", "General", "5.7.26", EventClass.POLICY),  # DMARC: the sender's fault, not the address
        ("Transient", "MailboxFull", "4.2.2", EventClass.SOFT),
        ("Undetermined", "Undetermined", "", EventClass.SOFT),
    ],
)
def test_ses_bounce_types(bounce_type: str, subtype: str, status: str, kind: EventClass) -> None:
    message = fixture("ses-bounce.json")
    message["bounce"].update(bounceType=bounce_type, bounceSubType=subtype)
    message["bounce"]["bouncedRecipients"][0].update(status=status, diagnosticCode="")
    assert ses_events(message, "n")[0].kind is kind


def test_complaints_marked_not_spam_are_ignored() -> None:
    message = fixture("ses-complaint.json")
    message["complaint"]["complaintFeedbackType"] = "not-spam"
    assert ses_events(message, "n")[0].report() is None


def test_postmark_mailgun_sendgrid_brevo() -> None:
    (postmark,) = parse_events("postmark", (FIXTURES / "postmark-bounce.json").read_bytes())
    assert (postmark.kind, postmark.address, postmark.event_id) == (
        EventClass.HARD,
        "john@example.com",
        "4323372036854775807",
    )
    (complaint,) = parse_events("postmark", (FIXTURES / "postmark-spam-complaint.json").read_bytes())
    assert complaint.kind is EventClass.COMPLAINT
    (mailgun,) = parse_events("mailgun", (FIXTURES / "mailgun-failed-permanent.json").read_bytes())
    assert (mailgun.kind, mailgun.status) == (EventClass.HARD, "5.1.1")
    assert mailgun.message_ids == ("20130503192659.13651.20287@sandbox.mailgun.org",)
    (temporary,) = parse_events("mailgun", (FIXTURES / "mailgun-failed-temporary.json").read_bytes())
    assert temporary.kind is EventClass.IGNORED
    kinds = [e.kind for e in parse_events("sendgrid", (FIXTURES / "sendgrid-events.json").read_bytes())]
    assert kinds == [
        EventClass.IGNORED,
        EventClass.DELIVERED,
        EventClass.COMPLAINT,
        EventClass.SOFT,
        EventClass.IGNORED,
    ]
    (brevo,) = parse_events("brevo", (FIXTURES / "brevo-hard-bounce.json").read_bytes())
    assert (brevo.kind, brevo.message_ids) == (EventClass.HARD, ("201798300811.5787683@relay.domain.com",))


def test_sendgrid_bounce_reasons_and_drops() -> None:
    events = [
        {"event": "bounce", "email": "a@example.org", "reason": "550 5.1.1 no such user", "status": "5.1.1"},
        {"event": "bounce", "type": "blocked", "email": "b@example.org", "reason": "554 5.7.1 spam"},
        {"event": "dropped", "email": "c@example.org", "reason": "Bounced Address"},
        {"event": "dropped", "email": "d@example.org", "reason": "Unsubscribed Address"},
    ]
    kinds = [e.kind for e in parse_events("sendgrid", json.dumps(events).encode())]
    assert kinds == [EventClass.HARD, EventClass.POLICY, EventClass.HARD, EventClass.IGNORED]


def test_hostile_values_are_cleaned_bounded_or_dropped() -> None:
    hostile = {
        "event": "hard_bounce",
        "email": "a@example.org\r\nBcc: x@example.org",
        "message-id": "<x@y>\r\n",
        "reason": "550\r\n5.1.1\x00 " + "x" * 5000,
    }
    (event,) = parse_events("brevo", json.dumps(hostile).encode())
    assert event.address == ""  # not an address: nobody can be named from it
    assert "\r" not in event.diagnostic and "\x00" not in event.diagnostic and len(event.diagnostic) <= 300
    assert event.message_ids == ("x@y",)
    for body in (b"[]", b"null", b'"text"', b"42", b'{"event": ["hard_bounce"]}'):
        for provider in ("postmark", "mailgun", "sendgrid", "brevo"):
            assert all(e.report() is None or not e.address for e in parse_events(provider, body))
    with pytest.raises(WebhookError) as caught:
        parse_events("brevo", b"{")
    assert caught.value.status == 400


def test_the_same_event_has_the_same_fingerprint_and_another_recipient_another() -> None:
    first = parse_events("brevo", (FIXTURES / "brevo-hard-bounce.json").read_bytes())[0]
    again = parse_events("brevo", (FIXTURES / "brevo-hard-bounce.json").read_bytes())[0]
    other = fixture("brevo-hard-bounce.json")
    other["email"] = "someone@example.com"
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != parse_events("brevo", json.dumps(other).encode())[0].fingerprint
