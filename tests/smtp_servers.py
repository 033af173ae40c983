"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1) that records every message it
accepts, with faults to inject: random 451s on RCPT and DATA, a 421 and disconnect every N
messages, 550 for chosen addresses, slow replies, AUTH, and vanishing mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
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
    hold_after: int = 0  # after this many accepted messages, hold each DATA until release()
    defer: frozenset[str] = frozenset()  # addresses that always get 451 at RCPT
    seed: int = 7
    # Hold every end of data until this many connections have had a recipient accepted (a minute at
    # most): no sender can finish the list before the others have started, however loaded the machine.
    gate_connections: int = 0


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
        self._released = threading.Event()
        self.in_data = self.peak_in_data = 0  # messages being received at once, now and at most
        self.accepted_at: list[float] = []  # time.monotonic() of each accepted message
        self._sessions: set[int] = set()
        self._gate: asyncio.Event | None = None

    def release(self) -> None:
        """Let the messages held by ``hold_after`` through (and every later one)."""
        self._released.set()

    def held(self) -> int:
        """How many messages are waiting for ``release``."""
        with self._lock:
            return self.in_data if self.faults.hold_after and len(self.messages) >= self.faults.hold_after else 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.faults.reject:
            self.replies["550"] += 1
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address in self.faults.defer or self._random.random() < self.faults.rcpt_451:
            self.replies["451-rcpt"] += 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        self._sessions.add(id(session))
        if len(self._sessions) >= self.faults.gate_connections:
            self._opened().set()
        return "250 OK"

    def _opened(self) -> asyncio.Event:
        if self._gate is None:  # made in the server's own loop, on first use
            self._gate = asyncio.Event()
        return self._gate

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.in_data += 1
            self.peak_in_data = max(self.peak_in_data, self.in_data)
        try:
            return await self._data(server, envelope)
        finally:
            with self._lock:
                self.in_data -= 1

    async def _data(self, server: Any, envelope: Any) -> str:
        if self.faults.gate_connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._opened().wait(), 60)
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        while self.faults.hold_after and len(self.messages) >= self.faults.hold_after and not self._released.is_set():
            await asyncio.sleep(0.005)
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
            self.accepted_at.append(time.monotonic())
        if self.faults.vanish_after and accepted == self.faults.vanish_after and self.on_vanish:
            threading.Thread(target=self.on_vanish, daemon=True).start()
        return "250 OK queued"

    def copies(self) -> Counter[str]:
        with self._lock:
            return Counter(r for m in self.messages for r in m.rcpt_tos)


class SMTPTestServer:
    """``with SMTPTestServer(faults) as server:``; ``server.port`` and ``server.handler.messages``."""

    def __init__(
        self, faults: Faults | None = None, *, credentials: tuple[str, str] | None = None, smtputf8: bool = True
    ) -> None:
        from conftest import free_port

        self.handler = RecordingHandler(faults or Faults(), on_vanish=self.stop)
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if credentials:

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == credentials
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_require_tls=False)
        kwargs.update(enable_SMTPUTF8=smtputf8)  # RFC 6531, offered unless a test says not
        # aiosmtpd gives a server 5 s to start by default: too short on a loaded machine.
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=60, **kwargs)
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


# A relay that misbehaves beyond what aiosmtpd allows: raw bytes on a socket, scripted per command.

HANG = b"<hang>"  # answer nothing, keep the connection open
DROP = b"<drop>"  # close the connection without a word


@dataclass
class Script:
    """What a RawSMTPServer answers. ``replies`` maps a verb (EHLO, MAIL, RCPT, DATA, RSET, QUIT,
    GREETING, or END for the end of the message data) to raw bytes sent as they are (two lines answer out of
    order, junk is junk) or HANG/DROP; ``rcpt`` overrides the RCPT reply for chosen addresses;
    ``end_times`` limits the END reply to the first N messages (0: every message)."""

    replies: dict[str, bytes] = field(default_factory=dict)
    rcpt: dict[str, bytes] = field(default_factory=dict)
    end_times: int = 0


_DEFAULT_REPLIES = {
    "EHLO": b"250-raw.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    "HELO": b"250 raw.test\r\n",
    "MAIL": b"250 2.1.0 OK\r\n",
    "RCPT": b"250 2.1.5 OK\r\n",
    "DATA": b"354 go ahead\r\n",
    "END": b"250 2.0.0 queued\r\n",
    "RSET": b"250 2.0.0 OK\r\n",
    "NOOP": b"250 2.0.0 OK\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
}


class RawSMTPServer:
    """``with RawSMTPServer(script) as server:``; ``server.port``; ``server.received`` holds every
    message whose data arrived (answered well or not), ``server.commands`` every command line."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.received: list[Received] = []
        self.commands: list[str] = []
        self.port = 0
        self._ends = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> RawSMTPServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the raw SMTP server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            self._loop.close()

    def _reply(self, verb: str, argument: str) -> bytes:
        if verb == "RCPT":
            address = argument.partition("<")[2].partition(">")[0]
            if address in self.script.rcpt:
                return self.script.rcpt[address]
        if verb == "END":
            self._ends += 1
            if self.script.end_times and self._ends > self.script.end_times:
                return _DEFAULT_REPLIES["END"]
        return self.script.replies.get(verb, _DEFAULT_REPLIES.get(verb, b"502 5.5.2 unknown command\r\n"))

    async def _answer(self, writer: asyncio.StreamWriter, reply: bytes) -> bool:
        """Send a reply; False when the script ends the session here."""
        if reply == DROP:
            writer.close()
            return False
        if reply == HANG:
            await asyncio.sleep(3600)
            return False
        writer.write(reply)
        await writer.drain()
        return True

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        mail_from, rcpts = "", list[str]()
        try:
            if not await self._answer(writer, self.script.replies.get("GREETING", b"220 raw.test ESMTP\r\n")):
                return
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.commands.append(text)
                verb, _, argument = text.partition(" ")
                verb = verb.upper()
                if verb == "MAIL":
                    mail_from, rcpts = argument.partition("<")[2].partition(">")[0], []
                elif verb == "RCPT":
                    rcpts.append(argument.partition("<")[2].partition(">")[0])
                reply = self._reply(verb, argument)
                if not await self._answer(writer, reply):
                    return
                if verb == "DATA" and reply.startswith(b"354"):
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.received.append(Received(mail_from, tuple(rcpts), data[: -len(b".\r\n")]))
                    if not await self._answer(writer, self._reply("END", "")):
                        return
                if verb == "QUIT":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)
