"""What the HTTP API transports share: one httpx client per connection, and the one place an
HTTP reply or an httpx exception becomes a ``Result`` with the SMTP transport's meaning (sent;
temporary, with the connection backing off; permanent for this recipient; possibly duplicated
when the request may have been acted on)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import httpx

from ...compose.envelope import Envelope
from ...config import TransportSettings
from ...errors import SMTPStartError
from ..transport import Kind, Result, clean_reply

__all__ = ["ApiConnection", "ApiReply", "ApiTransport", "result_of_exception", "result_of_reply"]

THROTTLED = {
    "throttling",
    "throttlingexception",
    "toomanyrequestsexception",
    "serviceunavailable",
    "limitexceededexception",
}


@dataclass(frozen=True)
class ApiReply:
    """A provider's answer, read: HTTP status, its error code (if any), its words, its message id."""

    provider: str
    status: int
    code: str = ""
    message: str = ""
    message_id: str = ""


def result_of_reply(reply: ApiReply, credentials: str) -> Result:
    """A reply as an outcome. A refused credential stops the send (SMTPStartError), as a refused
    SMTP login does: no recipient could be served."""
    said = clean_reply(" ".join(p for p in (reply.code, reply.message) if p))
    text = f"{reply.provider}: HTTP {reply.status}" + (f" {said}" if said else "")
    if 200 <= reply.status < 300:
        return Result(Kind.SENT, 250, clean_reply(f"{reply.provider} accepted it as {reply.message_id}"))
    if reply.status in (401, 403) and reply.code.lower() not in THROTTLED:
        raise SMTPStartError(f"{text} (check {credentials})", code=reply.status)
    if reply.status == 429 or reply.code.lower() in THROTTLED or reply.status == 503:
        return Result(Kind.TEMPORARY, 0, text, reset_connection=True)  # back off, then try again
    if reply.status >= 500:  # the provider failed mid-request: it may have queued the message
        return Result(Kind.TEMPORARY, 0, text, uncertain=True, reset_connection=True)
    return Result(Kind.PERMANENT, 0, text)


def result_of_exception(provider: str, exc: httpx.HTTPError) -> Result:
    """A request that got no reply: before it was sent it is simply retried; after (a read that
    timed out, a dropped connection) the provider may have the message: possibly duplicated."""
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    what = "no reply" if sent else "cannot connect"
    return Result(
        Kind.TEMPORARY,
        0,
        clean_reply(f"{provider}: {what} ({type(exc).__name__}: {exc})"),
        uncertain=sent,
        reset_connection=True,
    )


class ApiTransport(abc.ABC):
    """A provider's HTTP API behind the ``Transport`` interface."""

    name = ""
    credentials = ""  # the environment variables that hold its credentials, for messages

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings

    @property
    def base_url(self) -> str:
        return self.settings.endpoint.rstrip("/") or self.default_endpoint()

    @abc.abstractmethod
    def default_endpoint(self) -> str: ...

    @abc.abstractmethod
    async def deliver(self, client: httpx.AsyncClient, envelope: Envelope) -> ApiReply: ...

    @abc.abstractmethod
    async def check(self, client: httpx.AsyncClient) -> ApiReply:
        """A request that succeeds only with working credentials (the account, server or domain)."""

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False)

    async def probe(self) -> None:
        try:
            async with self.client() as client:
                reply = await self.check(client)
        except httpx.HTTPError as exc:
            raise SMTPStartError(f"cannot reach the {self.name} API at {self.base_url}: {type(exc).__name__}") from None
        try:
            result = result_of_reply(reply, self.credentials)
        except SMTPStartError as exc:
            raise SMTPStartError(f"the {self.name} API refused the account check: {exc}", code=exc.code) from None
        if result.kind is not Kind.SENT:
            raise SMTPStartError(f"the {self.name} API refused the account check: {result.reply}")

    def connection(self) -> ApiConnection:
        return ApiConnection(self)


class ApiConnection:
    def __init__(self, transport: ApiTransport) -> None:
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    async def send(self, envelope: Envelope) -> Result:
        if self._client is None:
            self._client = self.transport.client()
        try:
            reply = await self.transport.deliver(self._client, envelope)
        except httpx.HTTPError as exc:
            await self.close()
            return result_of_exception(self.transport.name, exc)
        return result_of_reply(reply, self.transport.credentials)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
