"""What a sending provider's webhook event says, in the classes the bounce rules know: hard, soft,
policy, complaint, delivered or ignored. Pure: payloads in, events out (web/webhooks.py checks
signatures, audience/bounce_log.py records and decides).

Each provider's mapping follows its published event reference (docs/relays.md lists them):
Amazon SES notifications and event publishing (bounceType and bounceSubType), Postmark's bounce
types, Mailgun's ``failed`` severity, SendGrid's event types and drop reasons, Brevo's
transactional events. Every value is hostile: addresses and Message-IDs are checked for shape,
words are cleaned and bounded, and an address named by a payload is only believed for someone
this workspace has mailed (the bounce log's rule).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import WebhookError
from .bounces import Category, Report, classify_status, clean

__all__ = ["PARSERS", "EventClass", "WebhookEvent", "parse_events", "ses_events"]

_ADDRESS = re.compile(r"^[^\s<>@\x00-\x1f\x7f]{1,64}@[^\s<>@\x00-\x1f\x7f]{1,255}$")
_MESSAGE_ID = re.compile(r"^<?([^<>@\s\x00-\x1f\x7f]{1,200}@[^<>\s\x00-\x1f\x7f]{1,200})>?$")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
MAX_EVENTS = 1000  # events read from one request (SendGrid batches; nobody sends more at once)


class EventClass(enum.Enum):
    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"
    COMPLAINT = "complaint"
    DELIVERED = "delivered"
    IGNORED = "ignored"  # opens, clicks, delays, unsubscribes through the provider...

    @property
    def category(self) -> Category | None:
        """The bounce category a report of this class is recorded under; None: not recorded."""
        return {
            EventClass.HARD: Category.HARD,
            EventClass.SOFT: Category.SOFT,
            EventClass.POLICY: Category.POLICY,
            EventClass.COMPLAINT: Category.COMPLAINT,
        }.get(self)


@dataclass(frozen=True)
class WebhookEvent:
    """One provider event about one recipient."""

    provider: str
    event_id: str  # the provider's id of the event (or of the notification): duplicates share it
    kind: EventClass
    address: str  # as the payload names it: believed only for someone this workspace mailed
    message_ids: tuple[str, ...] = ()  # Message-IDs (without brackets) the event names
    status: str = ""
    diagnostic: str = ""

    def report(self) -> Report | None:
        """The report the bounce log records, or None for an event it does not record."""
        category = self.kind.category
        if category is None:
            return None
        return Report(category, (self.address,) if self.address else (), self.status, self.diagnostic)

    @property
    def fingerprint(self) -> str:
        """What makes the event a duplicate: provider, event id and recipient."""
        key = f"webhook\0{self.provider}\0{self.event_id}\0{self.address.lower()}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def source(self) -> str:
        return clean(f"webhook:{self.provider}:{self.event_id}", 200)


def _text(value: object, limit: int = 300) -> str:
    return clean(str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else "", limit)


def _address(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    return text if _ADDRESS.match(text) else ""


def _message_ids(*values: object) -> tuple[str, ...]:
    found = []
    for value in values:
        match = _MESSAGE_ID.match(value.strip()) if isinstance(value, str) else None
        if match:
            found.append(match.group(1))
    return tuple(dict.fromkeys(found))


def _status_in(*texts: str) -> str:
    for text in texts:
        if match := _STATUS.search(text):
            return match.group(1)
    return ""


def _event_id(event: Mapping[str, Any], *keys: str) -> str:
    """The first id the payload gives, else a digest of the whole event (it is what it is)."""
    for key in keys:
        if value := _text(event.get(key), 200):
            return value
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# Amazon SES: the notification (or event publishing record) inside an SNS Notification's Message.

_SES_POLICY_SUBTYPES = {"contentrejected", "attachmentrejected"}
_SES_HARD_SUBTYPES = {"general", "noemail", "suppressed", "onaccountsuppressionlist"}


def ses_events(message: Mapping[str, Any], notification_id: str) -> list[WebhookEvent]:
    kind = _text(message.get("notificationType") or message.get("eventType"), 40).lower()
    mail = _dict(message.get("mail"))
    common = _dict(mail.get("commonHeaders"))
    headers = [_dict(h) for h in _list(mail.get("headers"))]
    ids = _message_ids(
        common.get("messageId"), *(h.get("value") for h in headers if _text(h.get("name")).lower() == "message-id")
    )
    if kind == "bounce":
        return _ses_bounces(_dict(message.get("bounce")), ids, notification_id)
    if kind == "complaint":
        complaint = _dict(message.get("complaint"))
        feedback = _text(complaint.get("complaintFeedbackType"), 40) or "abuse"
        what = EventClass.IGNORED if feedback.lower() == "not-spam" else EventClass.COMPLAINT
        event_id = _text(complaint.get("feedbackId"), 200) or notification_id
        return [
            WebhookEvent("ses", event_id, what, _address(r.get("emailAddress")), ids, "", f"complaint: {feedback}")
            for r in map(_dict, _list(complaint.get("complainedRecipients")))
        ]
    if kind == "delivery":
        delivery = _dict(message.get("delivery"))
        return [
            WebhookEvent("ses", notification_id, EventClass.DELIVERED, _address(r), ids)
            for r in _list(delivery.get("recipients"))
        ]
    return []


def _ses_bounces(bounce: Mapping[str, Any], ids: tuple[str, ...], notification_id: str) -> list[WebhookEvent]:
    bounce_type = _text(bounce.get("bounceType"), 40).lower()
    subtype = _text(bounce.get("bounceSubType"), 60).lower()
    event_id = _text(bounce.get("feedbackId"), 200) or notification_id
    events = []
    for recipient in map(_dict, _list(bounce.get("bouncedRecipients"))):
        diagnostic = _text(recipient.get("diagnosticCode"))
        status = _status_in(_text(recipient.get("status"), 20), diagnostic)
        if subtype in _SES_POLICY_SUBTYPES:
            kind = EventClass.POLICY
        elif bounce_type == "permanent":
            category = classify_status(status, diagnostic) if status else Category.HARD
            kind = EventClass.HARD if subtype in _SES_HARD_SUBTYPES and category is Category.HARD else _klass(category)
        else:  # Transient and Undetermined: SES itself may still be trying, or the mailbox is full
            kind = EventClass.SOFT
        said = diagnostic or f"{bounce_type} bounce ({subtype})"
        events.append(WebhookEvent("ses", event_id, kind, _address(recipient.get("emailAddress")), ids, status, said))
    return events


def _klass(category: Category) -> EventClass:
    return {Category.HARD: EventClass.HARD, Category.POLICY: EventClass.POLICY}.get(category, EventClass.SOFT)


# Postmark: one JSON object per request; RecordType and the bounce Type name what happened.

_POSTMARK_TYPES = {
    "hardbounce": EventClass.HARD,
    "bademailaddress": EventClass.HARD,
    "softbounce": EventClass.SOFT,
    "transient": EventClass.SOFT,
    "dnserror": EventClass.SOFT,
    "spamcomplaint": EventClass.COMPLAINT,
    "spamnotification": EventClass.POLICY,
    "blocked": EventClass.POLICY,
    "dmarcpolicy": EventClass.POLICY,
    "virusnotification": EventClass.POLICY,
}


def postmark_events(payload: object) -> list[WebhookEvent]:
    event = _dict(payload)
    record = _text(event.get("RecordType"), 40).lower()
    event_id = _event_id(event, "ID", "MessageID")
    if record == "delivery":
        return [WebhookEvent("postmark", event_id, EventClass.DELIVERED, _address(event.get("Recipient")))]
    if record not in ("bounce", "spamcomplaint"):
        return []
    kind = _POSTMARK_TYPES.get(_text(event.get("Type"), 40).lower(), EventClass.IGNORED)
    if record == "spamcomplaint":
        kind = EventClass.COMPLAINT
    details = _text(event.get("Details")) or _text(event.get("Description"))
    metadata = _dict(event.get("Metadata"))
    ids = _message_ids(metadata.get("newsletter-message-id"))
    return [WebhookEvent("postmark", event_id, kind, _address(event.get("Email")), ids, _status_in(details), details)]


# Mailgun: {"signature": {...}, "event-data": {...}}; the signature is checked before this.


def mailgun_events(payload: object) -> list[WebhookEvent]:
    data = _dict(_dict(payload).get("event-data"))
    name = _text(data.get("event"), 40).lower()
    status = _dict(data.get("delivery-status"))
    words = " ".join(w for w in (_text(status.get("message")), _text(status.get("description"))) if w)
    code = _text(status.get("code"), 10)
    enhanced = _status_in(_text(status.get("enhanced-code"), 20), words)
    if name == "failed":
        severity = _text(data.get("severity"), 20).lower()
        if severity != "permanent":  # Mailgun retries a temporary failure and reports the end
            kind = EventClass.IGNORED
        elif _text(data.get("reason"), 40).lower() == "suppress-bounce":
            kind = EventClass.HARD  # Mailgun's own bounce list already holds the address
        else:
            kind = _klass(classify_status(enhanced, words)) if enhanced or words else EventClass.HARD
    else:
        kind = {"complained": EventClass.COMPLAINT, "delivered": EventClass.DELIVERED}.get(name, EventClass.IGNORED)
    headers = _dict(_dict(data.get("message")).get("headers"))
    diagnostic = clean(f"{code} {words}".strip()) or f"mailgun {name}"
    event = WebhookEvent(
        "mailgun", _event_id(data, "id"), kind, _address(data.get("recipient")),
        _message_ids(headers.get("message-id")), enhanced, diagnostic,
    )  # fmt: skip
    return [event]


# SendGrid: a JSON array of events per request.

_SENDGRID_DROPS = {
    "bounced address": EventClass.HARD,
    "invalid": EventClass.HARD,
    "spam reporting address": EventClass.COMPLAINT,
}


def sendgrid_events(payload: object) -> list[WebhookEvent]:
    events = []
    for event in map(_dict, _list(payload)[:MAX_EVENTS]):
        name = _text(event.get("event"), 40).lower()
        reason = _text(event.get("reason"))
        status = _status_in(reason, _text(event.get("status"), 20))
        if name == "bounce":
            blocked = _text(event.get("type"), 20).lower() == "blocked"
            kind = (
                EventClass.POLICY if blocked else _klass(classify_status(status, reason)) if status else EventClass.HARD
            )
        elif name == "dropped":
            kind = _SENDGRID_DROPS.get(reason.lower(), EventClass.IGNORED)
        else:
            kind = {"spamreport": EventClass.COMPLAINT, "delivered": EventClass.DELIVERED}.get(name, EventClass.IGNORED)
        event_id = _event_id(event, "sg_event_id")
        ids = _message_ids(event.get("smtp-id"))
        events.append(
            WebhookEvent("sendgrid", event_id, kind, _address(event.get("email")), ids, status, reason or name)
        )
    return events


# Brevo: one transactional event per request.

_BREVO = {
    "hard_bounce": EventClass.HARD,
    "invalid_email": EventClass.HARD,
    "soft_bounce": EventClass.SOFT,
    "blocked": EventClass.POLICY,
    "spam": EventClass.COMPLAINT,
    "complaint": EventClass.COMPLAINT,
    "delivered": EventClass.DELIVERED,
}


def brevo_events(payload: object) -> list[WebhookEvent]:
    event = _dict(payload)
    name = _text(event.get("event"), 40).lower()
    kind = _BREVO.get(name, EventClass.IGNORED)
    reason = _text(event.get("reason"))
    ids = _message_ids(event.get("message-id"), event.get("messageId"))
    # Brevo gives no id of its own to an event: its message, kind, recipient and time name it.
    key = {k: event.get(k) for k in ("message-id", "messageId", "event", "email", "ts_event", "ts_epoch", "ts")}
    event_id = _event_id(key)
    return [
        WebhookEvent("brevo", event_id, kind, _address(event.get("email")), ids, _status_in(reason), reason or name)
    ]


PARSERS: dict[str, Callable[[object], list[WebhookEvent]]] = {
    "postmark": postmark_events,
    "mailgun": mailgun_events,
    "sendgrid": sendgrid_events,
    "brevo": brevo_events,
}


def parse_events(provider: str, body: bytes) -> list[WebhookEvent]:
    """The events of a verified request body (SES's come through ``ses_events`` after SNS)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookError(f"the {provider} webhook's body is not JSON", status=400) from None
    return PARSERS[provider](payload)
