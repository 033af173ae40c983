"""A built-in SMTP server on loopback that files every message into a Maildir, so the whole
send path runs over real SMTP on a machine with no relay configured."""

from __future__ import annotations

import mailbox
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class MaildirHandler:
    maildir: Path
    received: int = 0
    _box: mailbox.Maildir | None = field(default=None, repr=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._box is None:
            self._box = mailbox.Maildir(self.maildir, create=True)
        content: bytes = envelope.original_content or envelope.content
        recipients = ", ".join(envelope.rcpt_tos)
        self._box.add(b"Delivered-To: " + recipients.encode("utf-8") + b"\r\n" + content)
        self.received += 1
        return "250 OK: filed in the local outbox"


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
