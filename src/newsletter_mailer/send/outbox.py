"""A built-in SMTP server on loopback that files every message into a Maildir, so the whole
send path runs over real SMTP on a machine with no relay configured. Each message is also
written as ``NNN-recipient.eml`` beside the Maildir, for a double-click into a mail client."""

from __future__ import annotations

import mailbox
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")
_NUMBERED = re.compile(r"^(\d+)-.*\.eml$")


def eml_name(number: int, recipient: str) -> str:
    """A file name for one message: the address reduced to characters safe in any file system
    (an address may hold / | $ and more), never hidden, never too long."""
    safe = _UNSAFE.sub("_", recipient).lstrip(".")[:80] or "recipient"
    return f"{number:03d}-{safe}.eml"


@dataclass
class MaildirHandler:
    maildir: Path
    received: int = 0
    _box: mailbox.Maildir | None = field(default=None, repr=False)
    _next: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._box is None:
            self._box = mailbox.Maildir(self.maildir, create=True)
        content: bytes = envelope.original_content or envelope.content
        recipients = ", ".join(envelope.rcpt_tos)
        message = b"Delivered-To: " + recipients.encode("utf-8") + b"\r\n" + content
        self._box.add(message)
        self._write_eml(envelope.rcpt_tos[0] if envelope.rcpt_tos else "", message)
        self.received += 1
        return "250 OK: filed in the local outbox"

    def _write_eml(self, recipient: str, message: bytes) -> None:
        if not self._next:
            numbers = (_NUMBERED.match(p.name) for p in self.maildir.iterdir())
            self._next = max((int(m.group(1)) for m in numbers if m), default=0) + 1
        while True:  # O_EXCL: an earlier run's file is never overwritten
            path = self.maildir / eml_name(self._next, recipient)
            self._next += 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(message)
            return


class LocalOutbox:
    """Start with ``with LocalOutbox(path) as outbox:``; ``outbox.port`` is where it listens."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.handler = MaildirHandler(maildir)
        self.port = 0
        self._controller: Controller | None = None

    def __enter__(self) -> LocalOutbox:
        mailbox.Maildir(self.maildir, create=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, data_size_limit=50 * 1024 * 1024
        )
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._controller is not None:
            self._controller.stop()
