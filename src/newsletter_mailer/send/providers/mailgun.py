"""Mailgun through its messages.mime API: the raw MIME we built goes out as it is (our DKIM
signature with it; Mailgun adds its own), with tracking off so Mailgun rewrites no link."""

from __future__ import annotations

import httpx

from ...compose.envelope import Envelope
from ...config import TransportSettings
from ...errors import ConfigError
from .base import ApiReply, ApiTransport

__all__ = ["MailgunTransport"]


class MailgunTransport(ApiTransport):
    name = "Mailgun"
    credentials = "NEWSLETTER_TRANSPORT_API_KEY (the API key)"

    def __init__(self, settings: TransportSettings) -> None:
        super().__init__(settings)
        if not settings.api_key:
            raise ConfigError('[transport] kind = "mailgun" needs the API key in NEWSLETTER_TRANSPORT_API_KEY')
        self.auth = httpx.BasicAuth("api", settings.api_key)

    def default_endpoint(self) -> str:
        return "https://api.mailgun.net"  # EU domains: endpoint = "https://api.eu.mailgun.net"

    async def check(self, client: httpx.AsyncClient) -> ApiReply:
        return _read(await client.get(f"{self.base_url}/v3/domains/{self.settings.domain}", auth=self.auth))

    async def deliver(self, client: httpx.AsyncClient, envelope: Envelope) -> ApiReply:
        fields = {"to": envelope.recipient, "o:tracking": "no", "o:tracking-clicks": "no", "o:tracking-opens": "no"}
        files = {"message": ("message.mime", bytes(envelope.data), "message/rfc822")}
        url = f"{self.base_url}/v3/{self.settings.domain}/messages.mime"
        return _read(await client.post(url, data=fields, files=files, auth=self.auth))


def _read(reply: httpx.Response) -> ApiReply:
    try:
        data = reply.json()
    except ValueError:
        data = {"message": reply.text[:200]}
    data = data if isinstance(data, dict) else {}
    return ApiReply("Mailgun", reply.status_code, "", str(data.get("message", "")), str(data.get("id", "")))
