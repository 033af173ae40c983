"""Postmark through its Email API. Postmark takes no raw MIME, so the message is sent as its
parts: From, To, Subject, Reply-To, the text and HTML bodies, and our list headers (List-Id,
List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID) as custom headers; Postmark builds the MIME
and signs it with its own DKIM for the sender signature's domain. Our DKIM signature, our
Message-ID and Date, and the exact bytes do not survive (docs/relays.md). Our Message-ID goes in
the Metadata, which Postmark's webhooks give back. Tracking is off, so the links stay ours.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import httpx

from ...compose.envelope import Envelope
from ...config import TransportSettings
from ...errors import ConfigError
from .base import ApiReply, ApiTransport

__all__ = ["KEPT_HEADERS", "PostmarkTransport", "postmark_request"]

KEPT_HEADERS = ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID")


def postmark_request(envelope: Envelope, stream: str) -> dict[str, object]:
    """The Email API's JSON for one message, read back from the MIME we built."""
    message = BytesParser(policy=policy.SMTP).parsebytes(bytes(envelope.data))
    assert isinstance(message, EmailMessage)
    bodies = {}
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.is_multipart():
            bodies[part.get_content_type()] = part.get_content()
    request: dict[str, object] = {
        "From": str(message["From"]),
        "To": envelope.recipient,
        "Subject": str(message["Subject"]),
        "TextBody": bodies.get("text/plain", ""),
        "HtmlBody": bodies.get("text/html", ""),
        "Headers": [{"Name": name, "Value": str(message[name])} for name in KEPT_HEADERS if message[name]],
        "MessageStream": stream,
        "TrackOpens": False,
        "TrackLinks": "None",
        "Metadata": {"newsletter-message-id": envelope.message_id.strip("<>")},
    }
    if message["Reply-To"]:
        request["ReplyTo"] = str(message["Reply-To"])
    return request


class PostmarkTransport(ApiTransport):
    name = "Postmark"
    credentials = "NEWSLETTER_TRANSPORT_API_KEY (the server token)"

    def __init__(self, settings: TransportSettings) -> None:
        super().__init__(settings)
        if not settings.api_key:
            raise ConfigError('[transport] kind = "postmark" needs the server token in NEWSLETTER_TRANSPORT_API_KEY')

    def default_endpoint(self) -> str:
        return "https://api.postmarkapp.com"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "X-Postmark-Server-Token": self.settings.api_key}

    async def check(self, client: httpx.AsyncClient) -> ApiReply:
        return _read(await client.get(self.base_url + "/server", headers=self._headers()))

    async def deliver(self, client: httpx.AsyncClient, envelope: Envelope) -> ApiReply:
        request = postmark_request(envelope, self.settings.message_stream)
        return _read(await client.post(self.base_url + "/email", json=request, headers=self._headers()))


def _read(reply: httpx.Response) -> ApiReply:
    """Postmark's errors: ``ErrorCode`` (10 bad token, 300 invalid request, 406 inactive
    recipient...) and ``Message``; 0 is success."""
    try:
        data = reply.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    error = data.get("ErrorCode", 0)
    code = f"ErrorCode {error}" if error else ""
    status = reply.status_code if not (error and reply.status_code == 200) else 422
    return ApiReply("Postmark", status, code, str(data.get("Message", "")), str(data.get("MessageID", "")))
