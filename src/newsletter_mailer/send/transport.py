"""Delivering envelopes over SMTP (aiosmtplib), one persistent connection per worker.

Every outcome is returned as a ``Result`` classified by RFC 5321: sent, temporary (retry later)
or permanent (give up on this recipient). Only a refused login or a connection that cannot be
opened at the start is raised, as SMTPStartError: nothing can be sent then.
"""

from __future__ import annotations

import asyncio
import enum
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Protocol

import aiosmtplib

from ..compose.envelope import Envelope
from ..config import SMTPSettings
from ..errors import SMTPStartError
from . import fastpath


class Kind(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Result:
    kind: Kind
    code: int
    reply: str
    uncertain: bool = False  # the connection dropped after the message data was sent
    reset_connection: bool = False  # back off the whole connection (421, disconnect)

    @property
    def hard_bounce(self) -> bool:
        """A permanent failure that says the mailbox does not exist (550/551/553 or 5.1.x)."""
        return self.kind is Kind.PERMANENT and (
            self.code in (550, 551, 553) or bool(re.match(r"^5\.1\.\d", self.reply))
        )

    def __str__(self) -> str:
        return f"{self.code} {self.reply}".strip() if self.code else self.reply


def classify(code: int, message: str, **extra: bool) -> Result:
    if 200 <= code < 300:
        return Result(Kind.SENT, code, message)
    if code == 421:
        return Result(Kind.TEMPORARY, code, message, reset_connection=True, **extra)
    if 400 <= code < 500:
        return Result(Kind.TEMPORARY, code, message, **extra)
    return Result(Kind.PERMANENT, code, message, **extra)


class Connection(Protocol):
    async def send(self, envelope: Envelope) -> Result: ...
    async def close(self) -> None: ...


class Transport(Protocol):
    async def probe(self) -> None:
        """Connect and log in once; SMTPStartError if the relay refuses."""

    def connection(self) -> Connection: ...


@dataclass
class SMTPTransport:
    settings: SMTPSettings
    local_hostname: str | None = None
    fast_path: bool = True  # aiosmtplib's DATA without passes that change nothing (see fastpath.py)

    def __post_init__(self) -> None:
        if self.fast_path:
            fastpath.install()

    def client(self) -> aiosmtplib.SMTP:
        s = self.settings
        context = None
        if not s.verify_certificates:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.effective_port,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            validate_certs=s.verify_certificates,
            tls_context=context,
            local_hostname=self.local_hostname or socket.getfqdn(),
        )

    async def open(self) -> aiosmtplib.SMTP:
        """A connected, logged-in client. Auth failures raise SMTPStartError."""
        s = self.settings
        client = self.client()
        await client.connect()
        if s.username:
            try:
                await client.login(s.username, s.password)
            except aiosmtplib.SMTPAuthenticationError as exc:
                client.close()
                raise SMTPStartError(
                    f"the SMTP server refused the login for {s.username!r}: {exc.code} {exc.message} "
                    "(check NEWSLETTER_SMTP_PASSWORD)",
                    code=exc.code,
                ) from None
        return client

    async def probe(self) -> None:
        s = self.settings
        try:
            client = await self.open()
        except SMTPStartError:
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SMTPStartError(
                f"cannot connect to the SMTP server {s.host}:{s.effective_port} ({s.security}): {exc}"
            ) from None
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    def connection(self) -> SMTPConnection:
        return SMTPConnection(self)


@dataclass
class SMTPConnection:
    transport: SMTPTransport
    client: aiosmtplib.SMTP | None = None
    sent_on_connection: int = 0

    async def _ensure(self) -> aiosmtplib.SMTP:
        limit = self.transport.settings.messages_per_connection
        if self.client is not None and (not self.client.is_connected or (limit and self.sent_on_connection >= limit)):
            await self.close()
        if self.client is None:
            self.client = await self.transport.open()
            self.sent_on_connection = 0
        return self.client

    async def send(self, envelope: Envelope) -> Result:
        try:
            client = await self._ensure()
        except SMTPStartError:
            raise
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            return classify(exc.code, exc.message, reset_connection=True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return Result(Kind.TEMPORARY, 0, f"connection failed: {exc}", reset_connection=True)
        phase = "mail"
        options = ["SMTPUTF8"] if not envelope.recipient.isascii() else []
        try:
            await client.mail(envelope.sender, options=options)
            phase = "rcpt"
            await client.rcpt(envelope.recipient, encoding="utf-8" if options else "ascii")
            phase = "data"
            response = await client.data(envelope.data)
        except aiosmtplib.SMTPAuthenticationError as exc:
            await self.close()
            raise SMTPStartError(
                f"the SMTP server refused the login: {exc.code} {exc.message}", code=exc.code
            ) from None
        except aiosmtplib.SMTPServerDisconnected as exc:
            await self.close()
            return Result(
                Kind.TEMPORARY, 0, f"connection lost: {exc}", uncertain=phase == "data", reset_connection=True
            )
        except aiosmtplib.SMTPResponseException as exc:
            result = classify(exc.code, exc.message)
            if result.reset_connection or not client.is_connected:
                await self.close()
                return Result(result.kind, result.code, result.reply, reset_connection=True)
            await self._reset(client)
            return result
        except (TimeoutError, aiosmtplib.SMTPTimeoutError) as exc:
            await self.close()
            return Result(Kind.TEMPORARY, 0, f"timed out: {exc}", uncertain=phase == "data", reset_connection=True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return Result(
                Kind.TEMPORARY, 0, f"connection error: {exc}", uncertain=phase == "data", reset_connection=True
            )
        self.sent_on_connection += 1
        return classify(response.code, response.message)

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self.close()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=5)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()


@dataclass
class MemoryTransport:
    """Keeps envelopes in a list instead of sending them: dry runs and unit tests."""

    sent: list[Envelope] = field(default_factory=list)
    keep: bool = True
    count: int = 0
    octets: int = 0

    async def probe(self) -> None:
        return None

    def connection(self) -> MemoryConnection:
        return MemoryConnection(self)


@dataclass
class MemoryConnection:
    transport: MemoryTransport

    async def send(self, envelope: Envelope) -> Result:
        self.transport.count += 1
        self.transport.octets += len(envelope.data)
        if self.transport.keep:
            self.transport.sent.append(envelope)
        return Result(Kind.SENT, 250, "kept in memory")

    async def close(self) -> None:
        return None
