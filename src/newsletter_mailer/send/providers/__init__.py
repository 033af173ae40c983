"""Providers' HTTP APIs behind the transport interface (send/transport.py): Amazon SES, Postmark
and Mailgun, chosen by ``[transport] kind``; ``smtp`` (the default) keeps the SMTP transport.

The provider modules (and httpx) are imported only when one is used: every sender process imports
this package, and a worker that starts late takes no share of a send."""

from __future__ import annotations

from ...config import Settings, SMTPSettings
from ..transport import SMTPTransport, Transport

__all__ = ["describe", "transport_for"]

_NAMES = {"ses": "SES", "postmark": "Postmark", "mailgun": "Mailgun"}


def transport_for(settings: Settings, smtp: SMTPSettings) -> Transport:
    """The configured transport: a provider's API, or SMTP to ``smtp`` (the relay or the outbox)."""
    kind = settings.transport.kind
    if kind == "ses":
        from .ses import SESTransport

        return SESTransport(settings.transport)
    if kind == "postmark":
        from .postmark import PostmarkTransport

        return PostmarkTransport(settings.transport)
    if kind == "mailgun":
        from .mailgun import MailgunTransport

        return MailgunTransport(settings.transport)
    return SMTPTransport(smtp)


def describe(settings: Settings) -> str:
    """Where an API transport sends, in words (empty for SMTP)."""
    t = settings.transport
    if t.kind not in _NAMES:
        return ""
    own = {"ses": f"https://email.{t.region}.amazonaws.com", "postmark": "https://api.postmarkapp.com"}
    return f"the {_NAMES[t.kind]} API at {t.endpoint or own.get(t.kind, 'https://api.mailgun.net')}"
