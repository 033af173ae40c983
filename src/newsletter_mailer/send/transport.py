"""Delivering envelopes over SMTP (aiosmtplib), one persistent connection per worker.

Every outcome is returned as a ``Result`` classified by RFC 5321 and RFC 3463: sent, temporary (retry later)
or permanent (give up on this recipient). Only a refused login or a connection that cannot be
opened at the start is raised, as SMTPStartError: nothing can be sent then.
"""

from __future__ import annotations

import asyncio
import enum
import re
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import aiosmtplib

from ..audience.bounces import Category, category_of, sender_side
from ..compose.envelope import Envelope
from ..config import SMTPSettings
from ..errors import SMTPStartError
from . import fastpath
from .oauth import TokenSource, basic_auth_refused, xoauth2_login

T = TypeVar("T")


class Kind(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


class Phase(enum.Enum):
    """How far a delivery got when it went wrong, which decides what a failure means."""

    CONNECT = "connect"  # opening a connection or logging in: nothing was handed over
    ENVELOPE = "envelope"  # MAIL, RCPT: refused before the message was sent
    DATA = "data"  # the DATA exchange began: the message may have gone out


@dataclass(frozen=True)
class Result:
    kind: Kind
    code: int
    reply: str
    uncertain: bool = False  # the message may have arrived though no 2xx said so: possibly duplicated
    reset_connection: bool = False  # back off the whole connection (421, disconnect, an unreadable reply)
    hard_bounce: bool = False  # the mailbox does not exist or is disabled: suppress the address
    local: bool = False  # refused here, before any command: says nothing about the relay's health
    policy: bool = False  # refused for our side's sake (policy, sender address, content): nobody's fault

    def __str__(self) -> str:
        return f"{self.code} {self.reply}".strip() if self.code else self.reply


NO_SMTPUTF8 = (
    "not sent: the address has a non-ASCII local part, which needs SMTPUTF8 (RFC 6531), and the relay does not offer it"
)
_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\U0010ffff]|[\u2028\u2029\ud800-\udfff]")
REPLY_LIMIT = 400


def clean_reply(text: str) -> str:
    """A relay's words, safe to store and print: one line, no control characters, bounded."""
    text = " / ".join(part.strip() for part in text.splitlines() if part.strip())
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= REPLY_LIMIT else text[: REPLY_LIMIT - 3] + "..."


def enhanced_status(reply: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code a reply starts with ("5.1.1 ..."), if any."""
    match = _ENHANCED_STATUS.match(reply.lstrip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def is_hard_bounce(code: int, reply: str) -> bool:
    """5.1.x (no such mailbox or domain) and 5.2.1 (mailbox disabled) on a 5xx reply, nothing else:
    the one rule of audience/bounces.py (``category_of``), which reports follow too.

    Policy and codes about our side (5.7.x, 5.1.7 and 5.1.8: the sender's address or domain
    refused, 5.5.x, 5.6.x), system and network (5.3.x, 5.4.x) and a full mailbox (5.2.2) say
    nothing against the address, and a bare 550 is used for all of these, so a reply without an
    enhanced code never suppresses anyone; nor do a sender-side refusal's words
    ("Sender address rejected") under a 5.1.x code.
    """
    return category(code, reply) is Category.HARD


def category(code: int, reply: str) -> Category:
    """What a refusal says about the recipient: HARD, SOFT or POLICY (audience/bounces.py). A
    policy refusal never suppresses, and counts toward the pause like any failure in a row."""
    status = enhanced_status(reply)
    if not 400 <= code < 600 or status is None:
        return Category.SOFT
    if status[0] != code // 100:  # "550 4.1.1": the reply contradicts itself, trust neither
        return Category.SOFT
    return Category.POLICY if sender_side(reply) else category_of(*status)


def delivered(code: int, message: str) -> Result:
    """The relay's 2xx to the end of the message data: the only reply that means sent."""
    return Result(Kind.SENT, code, clean_reply(message))


def classify(code: int, message: str, phase: Phase = Phase.DATA) -> Result:
    """A reply that refused a command, or one that made no sense where it came (RFC 5321 codes)."""
    reply = clean_reply(message)
    if code == 421:
        return Result(Kind.TEMPORARY, code, reply, reset_connection=True)
    if 400 <= code < 500:
        return Result(Kind.TEMPORARY, code, reply)
    if 500 <= code < 600:
        meaning = category(code, reply)
        return Result(
            Kind.PERMANENT, code, reply, hard_bounce=meaning is Category.HARD, policy=meaning is Category.POLICY
        )
    # Garbage, or a reply out of order (a 250 to DATA where 354 belongs): the conversation is lost,
    # so start a new one; after DATA began the relay may have the message, so it may be duplicated.
    shown = f"{code} {reply}" if code > 0 else reply
    return Result(
        Kind.TEMPORARY,
        0,
        f"unexpected reply during {phase.value}: {shown}",
        uncertain=phase is Phase.DATA,
        reset_connection=True,
    )


def start_error(exc: Exception, settings: SMTPSettings) -> SMTPStartError:
    """A failure to connect or log in, said in a line that names the relay (never the password)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        said = clean_reply(f"{exc.code} {exc.message}")
        if settings.auth == "xoauth2":
            fix = "check the token command's account and scope: https://outlook.office.com/SMTP.Send or https://mail.google.com/"
        elif status := basic_auth_refused(exc.code, exc.message):
            fix = (
                f'{status}: this relay refuses password logins; set [smtp] auth = "xoauth2" and a token_command '
                "(docs/relays.md)"
            )
        else:
            fix = "check NEWSLETTER_SMTP_PASSWORD"
        return SMTPStartError(
            f"the SMTP server refused the login for {settings.username!r}: {said} ({fix})", code=exc.code
        )
    return SMTPStartError(
        f"cannot connect to the SMTP server {settings.host}:{settings.effective_port} ({settings.security}): {exc}"
    )


def result_of_error(exc: Exception, phase: Phase, settings: SMTPSettings, *, connected: bool) -> Result:
    """The one place that turns an aiosmtplib or socket exception into a Result.

    A refused login is raised as SMTPStartError: no recipient can be served then.
    """
    uncertain = phase is Phase.DATA
    if isinstance(exc, SMTPStartError):  # the token command failed: no connection can log in
        raise exc
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        raise start_error(exc, settings) from None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        result = classify(exc.code, exc.message, phase)
        if result.reset_connection or (connected and phase is not Phase.CONNECT):
            return result
        return replace(result, reset_connection=True)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        what = "connection lost"
    elif isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        what = "timed out"
    else:
        what = "connection failed" if phase is Phase.CONNECT else "connection error"
    reply = f"{what} during {phase.value}: {clean_reply(str(exc))}"
    return Result(Kind.TEMPORARY, 0, reply, uncertain=uncertain, reset_connection=True)


# What a relay or its socket may raise; anything else is a bug and keeps its traceback.
RELAY_ERRORS = (aiosmtplib.SMTPException, OSError)


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

    tokens: TokenSource | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.fast_path:
            fastpath.install()
        if self.settings.auth == "xoauth2" and self.settings.username:
            self.tokens = TokenSource(self.settings.token_command)

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
        """A connected, logged-in client; aiosmtplib's exceptions pass through."""
        client = self.client()
        await client.connect()
        if self.settings.username:
            try:
                await self._login(client)
            except BaseException:
                client.close()
                raise
        return client

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        username = self.settings.username
        if self.tokens is None:
            await client.login(username, self.settings.password)
            return
        token = await self.tokens.token()
        try:
            await xoauth2_login(client, username, token)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code == 504:  # XOAUTH2 not offered: a new token would not help
                raise
            # Revoked, or expired before its time: once more with a token fetched now.
            await xoauth2_login(client, username, await self.tokens.token(refused=token))

    async def probe(self) -> None:
        try:
            client = await self.open()
        except SMTPStartError:
            raise
        except RELAY_ERRORS as exc:
            raise start_error(exc, self.settings) from None
        try:
            await client.quit()
        except RELAY_ERRORS:
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
        phase = Phase.CONNECT
        try:
            client = await self._ensure()
            phase = Phase.ENVELOPE
            # The sender is always ASCII (the settings refuse another); only a reader's address may
            # need SMTPUTF8, and only a relay that offers it may be asked to carry it.
            options = ["SMTPUTF8"] if not envelope.recipient.isascii() else []
            if options and not await self._offers_smtputf8(client):
                return Result(Kind.PERMANENT, 0, NO_SMTPUTF8, local=True)
            await self._step(client.mail(envelope.sender, options=options, timeout=None))
            encoding = "utf-8" if options else "ascii"
            await self._step(client.rcpt(envelope.recipient, encoding=encoding, timeout=None))
            phase = Phase.DATA
            # aiosmtplib returns only on a 250 to the end of the data; any other reply to DATA or
            # to the end of the data (a 250 where 354 belongs too) is raised as SMTPDataError.
            response = await self._step(client.data(envelope.data, timeout=None))
        except RELAY_ERRORS as exc:
            connected = self.client is not None and self.client.is_connected
            try:
                result = result_of_error(exc, phase, self.transport.settings, connected=connected)
            except SMTPStartError:
                await self.close()
                raise
            await (self.close() if result.reset_connection else self._reset())
            return result
        self.sent_on_connection += 1
        return delivered(response.code, response.message)

    async def _offers_smtputf8(self, client: aiosmtplib.SMTP) -> bool:
        if client.is_ehlo_or_helo_needed:  # no STARTTLS or login on this connection has asked yet
            await self._step(client.ehlo())
        return client.supports_extension("smtputf8")

    async def _step(self, command: Awaitable[T]) -> T:
        """One command under the relay timeout, with one timer for the step: aiosmtplib's own
        timeout arms a timer and a task for every reply it reads, which cost more than the rest of
        a message's Python work. A step that runs out leaves the dialogue out of step: hang up."""
        try:
            async with asyncio.timeout(self.transport.settings.timeout):
                return await command
        except TimeoutError:
            if self.client is not None:
                self.client.close()
            raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from None

    async def _reset(self) -> None:
        """After a refused recipient the connection is fine: RSET and go on with the next one."""
        if self.client is None:
            return
        try:
            await self.client.rset()
        except RELAY_ERRORS:
            await self.close()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Stopped (Ctrl+C) mid-command: the dialogue is out of step, and a QUIT would read a
            # reply meant for another command in a task nobody waits for. Just hang up.
            client.close()
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=5)
        except (TimeoutError, *RELAY_ERRORS):
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
