"""The signup confirmation mail, written as bytes through the hardened header writer (headers.py),
like the newsletter itself: a visitor's name is only ever text in From/To, never parsed as RFC 2047.

The email package is not used to write it: ``EmailMessage`` decodes an encoded-word in a display
name into raw CR/LF when it serialises, which let a name posted to the form add headers and parts.
"""

from __future__ import annotations

import html
import secrets
from email.utils import formatdate, make_msgid

from ..audience.subscribers import Subscriber
from ..config import Settings
from .bidi import direction
from .dkim import DkimSigner
from .envelope import Envelope, qp
from .headers import mailbox, unstructured
from .i18n import catalogue

__all__ = ["confirmation_envelope", "confirmation_text"]


def confirmation_text(settings: Settings, url: str, language: str = "") -> tuple[str, str]:
    """The plain text and HTML bodies: the link, how long it works, and what ignoring it means;
    in ``language`` (the one chosen on the form), else the newsletter's."""
    news = settings.newsletter
    language = language or news.language
    _ = catalogue(language).gettext
    asked = _("Someone, probably you, asked to receive %(name)s at this address.")
    expiry = _(
        "The link works for %(hours)s hours. If you did not ask, ignore this message: "
        "you will not be subscribed and will not hear from us again."
    ) % {"hours": f"{settings.signup.confirm_hours:g}"}
    how = _("To confirm, open this link and press the button:")
    text = f"{asked % {'name': news.name}}\n\n{how}\n\n{url}\n\n{expiry}\n"
    button = _("Confirm your subscription")
    page = (
        f'<!doctype html><html lang="{html.escape(language)}" dir="{direction(language)}">'
        '<body style="font-family:sans-serif">'
        f"<p>{html.escape(asked % {'name': news.name})}</p>"
        f'<p><a href="{html.escape(url)}">{html.escape(button)}</a></p>'
        f"<p>{html.escape(expiry)}</p></body></html>"
    )
    return text, page


def _headers(settings: Settings, subscriber: Subscriber, message_id: str, language: str) -> bytes:
    news = settings.newsletter
    lines = [
        b"From: " + mailbox("From", news.from_display_name, news.from_),
        b"To: " + mailbox("To", subscriber.name, subscriber.email),
    ]
    if news.reply_to:  # where the newsletter's answers go, the confirmation's go too
        lines.append(b"Reply-To: " + mailbox("Reply-To", news.reply_to_name, news.reply_to))
    subject = catalogue(language).gettext("Please confirm your subscription to %(name)s") % {"name": news.name}
    lines.append(b"Subject: " + unstructured("Subject", subject))
    lines.append(b"Date: " + formatdate(localtime=True).encode("ascii"))
    lines.append(b"Message-ID: " + message_id.encode("ascii"))
    lines.append(b"Auto-Submitted: auto-generated")
    lines.append(b"MIME-Version: 1.0")
    return b"\r\n".join(lines) + b"\r\n"


def confirmation_envelope(
    settings: Settings, subscriber: Subscriber, url: str, dkim: DkimSigner | None = None, language: str = ""
) -> Envelope:
    """The confirmation mail for one visitor, in the language they chose (else the newsletter's),
    signed when DKIM is set up, ready for the transport."""
    news = settings.newsletter
    language = language or news.language
    message_id = make_msgid(domain=news.from_domain)
    boundary = f"=_nlm_{secrets.token_hex(12)}"
    text, page = confirmation_text(settings, url, language)
    parts = [
        _headers(settings, subscriber, message_id, language),
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"),
    ]
    for subtype, body in (("plain", text), ("html", page)):
        parts.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
        )
        parts.append(qp(body) + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    data = b"".join(parts)
    if dkim is not None:
        data = dkim.sign(data)
    sender = settings.bounces.address or news.from_
    return Envelope(sender, subscriber.email, data, message_id)
