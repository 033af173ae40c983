"""Amazon SES through its v2 HTTP API: SendEmail with Raw content, so the message goes out as we
built it (headers, both parts, our DKIM signature); SigV4 signing (sigv4.py).

SES overwrites the Date and Message-ID headers of a raw message and tells senders not to sign
them, so with this transport our DKIM signature leaves those two out (compose/dkim.py).
"""

from __future__ import annotations

import base64
import json
import time

import httpx

from ...compose.envelope import Envelope
from ...config import TransportSettings
from ...errors import ConfigError
from .base import ApiReply, ApiTransport
from .sigv4 import Credentials, sign

__all__ = ["SESTransport"]


class SESTransport(ApiTransport):
    name = "SES"
    credentials = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"

    def __init__(self, settings: TransportSettings) -> None:
        super().__init__(settings)
        if not settings.aws_access_key_id or not settings.aws_secret_access_key:
            raise ConfigError(
                '[transport] kind = "ses" needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment'
            )
        self.keys = Credentials(settings.aws_access_key_id, settings.aws_secret_access_key, settings.aws_session_token)

    def default_endpoint(self) -> str:
        return f"https://email.{self.settings.region}.amazonaws.com"

    async def _request(self, client: httpx.AsyncClient, method: str, path: str, body: bytes = b"") -> ApiReply:
        url = self.base_url + path
        headers = {"host": httpx.URL(url).netloc.decode("ascii")}
        if body:
            headers["content-type"] = "application/json"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = sign(method, url, headers, body, self.keys, self.settings.region, "ses", stamp)
        reply = await client.request(method, url, content=body, headers=signed)
        return _read(reply)

    async def check(self, client: httpx.AsyncClient) -> ApiReply:
        return await self._request(client, "GET", "/v2/email/account")

    async def deliver(self, client: httpx.AsyncClient, envelope: Envelope) -> ApiReply:
        request = {
            "Destination": {"ToAddresses": [envelope.recipient]},
            "Content": {"Raw": {"Data": base64.b64encode(envelope.data).decode("ascii")}},
        }
        return await self._request(client, "POST", "/v2/email/outbound-emails", json.dumps(request).encode())


def _read(reply: httpx.Response) -> ApiReply:
    """SES v2 errors: the type in x-amzn-ErrorType (``Type:extra``), the words in ``message``."""
    try:
        data = reply.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    code = reply.headers.get("x-amzn-errortype", "").partition(":")[0] or str(data.get("__type", "")).rpartition("#")[2]
    message = str(data.get("message") or data.get("Message") or "")
    return ApiReply("SES", reply.status_code, code, message, str(data.get("MessageId", "")))
