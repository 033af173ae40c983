"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1) that records every message it
accepts, with faults to inject: random 451s on RCPT and DATA, a 421 and disconnect every N
messages, 550 for chosen addresses, slow replies, AUTH, and vanishing mid-run."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


@dataclass
class Faults:
    rcpt_451: float = 0.0
    data_451: float = 0.0
    disconnect_every: int = 0
    reject: frozenset[str] = frozenset()
    delay: float = 0.0
    vanish_after: int = 0  # stop listening after this many accepted messages
    seed: int = 7


@dataclass
class RecordingHandler:
    faults: Faults = field(default_factory=Faults)
    messages: list[Received] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)
    on_vanish: Any = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._data_count = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.faults.reject:
            self.replies["550"] += 1
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if self._random.random() < self.faults.rcpt_451:
            self.replies["451-rcpt"] += 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self._random.random() < self.faults.data_451:
            self.replies["451-data"] += 1
            return "451 4.3.0 data deferred"
        self._data_count += 1
        every = self.faults.disconnect_every
        if every and self._data_count % every == 0:
            self.replies["421"] += 1
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 closing connection, too many messages"
        with self._lock:
            self.messages.append(
                Received(
                    envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content)
                )
            )
            accepted = len(self.messages)
        if self.faults.vanish_after and accepted == self.faults.vanish_after and self.on_vanish:
            threading.Thread(target=self.on_vanish, daemon=True).start()
        return "250 OK queued"

    def copies(self) -> Counter[str]:
        with self._lock:
            return Counter(r for m in self.messages for r in m.rcpt_tos)


class SMTPTestServer:
    """``with SMTPTestServer(faults) as server:``; ``server.port`` and ``server.handler.messages``."""

    def __init__(self, faults: Faults | None = None, *, credentials: tuple[str, str] | None = None) -> None:
        from conftest import free_port

        self.handler = RecordingHandler(faults or Faults(), on_vanish=self.stop)
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if credentials:

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == credentials
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_require_tls=False)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self._stopped = False

    def __enter__(self) -> SMTPTestServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.controller.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop()
