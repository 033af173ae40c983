"""Providers' HTTP APIs behind the transport interface (send/transport.py): Amazon SES, Postmark
and Mailgun, chosen by ``[transport] kind``; ``smtp`` (the default) keeps the SMTP transport."""

from __future__ import annotations

from ...config import Settings, SMTPSettings
from ..transport import SMTPTransport, Transport
from .base import ApiTransport
from .mailgun import MailgunTransport
from .postmark import PostmarkTransport
from .ses import SESTransport

__all__ = ["ApiTransport", "MailgunTransport", "PostmarkTransport", "SESTransport", "describe", "transport_for"]

_KINDS: dict[str, type[ApiTransport]] = {
    "ses": SESTransport,
    "postmark": PostmarkTransport,
    "mailgun": MailgunTransport,
}


def transport_for(settings: Settings, smtp: SMTPSettings) -> Transport:
    """The configured transport: a provider's API, or SMTP to ``smtp`` (the relay or the outbox)."""
    kind = _KINDS.get(settings.transport.kind)
    return SMTPTransport(smtp) if kind is None else kind(settings.transport)


def describe(settings: Settings) -> str:
    """Where an API transport sends, in words (empty for SMTP)."""
    kind = _KINDS.get(settings.transport.kind)
    if kind is None:
        return ""
    t = settings.transport
    own = {"ses": f"https://email.{t.region}.amazonaws.com", "postmark": "https://api.postmarkapp.com"}
    return f"the {kind.name} API at {t.endpoint or own.get(t.kind, 'https://api.mailgun.net')}"
