"""Where returned mail is read from: files, mbox files and Maildir folders given on the command
line, or the IMAP mailbox in ``[bounces]``.

IMAP messages are fetched with BODY.PEEK so that only the ones actually processed become
\\Seen; each processed one is then moved to the processed folder, so a rerun does not see it.
imaplib's exceptions are translated to MailboxError in one place, ``_imap_errors``.

No message is read past MAX_REPORT_BYTES + 1 bytes, wherever it is (a file, an mbox, a Maildir,
IMAP): the extra byte tells the reader it is too big, and it is quarantined unread.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from ..config import BouncesSettings
from ..errors import ConfigError, MailboxError, UserInputError
from .bounces import MAX_REPORT_BYTES

__all__ = ["READ_LIMIT", "ImapMailbox", "Incoming", "flag_maildir", "read_paths"]

PASSWORD_ENV = "NEWSLETTER_BOUNCES_PASSWORD"
READ_LIMIT = MAX_REPORT_BYTES + 1  # one byte more than a report may have: enough to know it is too big


@dataclass(frozen=True)
class Incoming:
    source: str  # where it came from, for the report: a path, path#N, or imap:FOLDER/UID
    data: bytes  # at most READ_LIMIT bytes
    uid: str = ""
    maildir: Path | None = None  # the Maildir folder it is in, to flag it if it is quarantined
    key: str = ""  # its key there


def _read_bounded(handle: BinaryIO) -> bytes:
    try:
        return handle.read(READ_LIMIT)
    finally:
        handle.close()


def read_paths(paths: Iterable[Path]) -> Iterator[Incoming]:
    """Every message in the given files (one message each), mbox files and Maildir folders."""
    for path in paths:
        if path.is_dir():
            if not ((path / "cur").is_dir() or (path / "new").is_dir()):
                raise UserInputError("a folder, but not a Maildir (it has no cur/ or new/)", file=path)
            box = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                data = _read_bounded(cast(BinaryIO, box.get_file(key)))
                yield Incoming(f"{path}/{key}", data, maildir=path, key=key)
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(5)
                data = head + handle.read(READ_LIMIT - len(head)) if head != b"From " else b""
        except FileNotFoundError:
            raise UserInputError("no such file", file=path) from None
        except OSError as exc:
            raise UserInputError(f"cannot read: {exc.strerror}", file=path) from None
        if head == b"From ":
            mbox = mailbox.mbox(path, factory=None, create=False)
            for number, key in enumerate(mbox.keys(), 1):
                yield Incoming(f"{path}#{number}", _read_bounded(cast(BinaryIO, mbox.get_file(key))))
        else:
            yield Incoming(str(path), data)


def flag_maildir(message: Incoming) -> None:
    """Mark a quarantined Maildir message Flagged and Seen (``:2,FS`` in its file name, moved to
    cur/ as the Maildir spec says), so a person finds it; other sources are left alone. Renamed,
    not rewritten: the mailbox module would parse the poison message to rewrite it."""
    if message.maildir is None:
        return
    for sub in ("new", "cur"):
        try:
            names = os.listdir(message.maildir / sub)
        except OSError:
            continue
        for name in names:
            key, _, info = name.partition(":")
            if key != message.key:
                continue
            flags = set(info[2:]) if info.startswith("2,") else set()
            target = message.maildir / "cur" / f"{key}:2,{''.join(sorted(flags | {'F', 'S'}))}"
            try:
                os.rename(message.maildir / sub / name, target)
            except OSError as exc:
                raise UserInputError(
                    f"cannot flag a quarantined message: {exc.strerror}", file=message.maildir
                ) from None
            return


def _quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def _imap_errors(what: str) -> Iterator[None]:
    try:
        yield
    except imaplib.IMAP4.error as exc:
        raise MailboxError(f"{what}: the server said {str(exc)[:200]}") from None
    except ssl.SSLError as exc:
        raise MailboxError(f"{what}: TLS failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise MailboxError(f"{what}: {exc.strerror or exc}") from None


class ImapMailbox:
    """``with ImapMailbox(settings.bounces) as box:`` then ``box.unseen()`` and ``box.done(...)``."""

    def __init__(self, settings: BouncesSettings, timeout: float = 30.0) -> None:
        if not settings.host:
            raise ConfigError("no [bounces] host is set: give files, mbox files or Maildir folders to read instead")
        if not settings.username or not settings.password:
            raise ConfigError(
                f"the bounce mailbox needs [bounces] username and the environment variable {PASSWORD_ENV}"
            )
        self.settings = settings
        self.timeout = timeout
        self._imap: imaplib.IMAP4 | None = None
        self._move = False

    def __enter__(self) -> ImapMailbox:
        s = self.settings
        where = f"IMAP {s.host}:{s.effective_port}"
        with _imap_errors(f"cannot connect to {where}"):
            if s.tls:
                context = ssl.create_default_context()
                if not s.verify_certificates:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._imap = imaplib.IMAP4_SSL(s.host, s.effective_port, ssl_context=context, timeout=self.timeout)
            else:
                self._imap = imaplib.IMAP4(s.host, s.effective_port, timeout=self.timeout)
        imap = self._imap
        try:
            with _imap_errors(f"{where} refused the login for {s.username!r}"):
                imap.login(s.username, s.password)
            with _imap_errors(f"{where}: cannot open the folder {s.folder!r}"):
                kind, _ = imap.select(_quote(s.folder))
                if kind != "OK":
                    raise MailboxError(f"{where}: there is no folder {s.folder!r}")
            with _imap_errors(f"{where}: cannot create the folder {s.processed_folder!r}"):
                kind, _ = imap.status(_quote(s.processed_folder), "(MESSAGES)")
                if kind != "OK":
                    imap.create(_quote(s.processed_folder))
            self._move = "MOVE" in imap.capabilities
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._imap is not None:
            imap, self._imap = self._imap, None
            try:
                if imap.state == "SELECTED":
                    imap.close()  # expunges what ``done`` marked deleted when MOVE is missing
                imap.logout()
            except (imaplib.IMAP4.error, OSError):
                pass  # closing a broken connection: what was done is already done

    @property
    def imap(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise MailboxError("the mailbox is not open")
        return self._imap

    def unseen(self) -> Iterator[Incoming]:
        """Messages not yet \\Seen in the folder, read without marking them."""
        with _imap_errors("cannot search the bounce folder"):
            _, found = self.imap.uid("SEARCH", "UNSEEN")
        uids = (found[0] or b"").split() if found else []
        for uid in uids:
            if not re.fullmatch(rb"\d+", uid):
                continue
            with _imap_errors(f"cannot fetch message {uid.decode()}"):
                # A partial fetch: the server sends no more than READ_LIMIT bytes of a huge message.
                _, parts = self.imap.uid("FETCH", uid.decode(), f"(BODY.PEEK[]<0.{READ_LIMIT}>)")
            data = next((p[1] for p in parts if isinstance(p, tuple) and len(p) == 2), b"")
            yield Incoming(f"imap:{self.settings.folder}/{uid.decode()}", data[:READ_LIMIT], uid.decode())

    def done(self, message: Incoming, *, move: bool, flag: bool = False) -> None:
        """Mark a processed message \\Seen (and \\Flagged if ``flag``: quarantined, for a person)
        and, if ``move``, move it to the processed folder."""
        uid, target = message.uid, _quote(self.settings.processed_folder)
        with _imap_errors(f"cannot mark message {uid} as processed"):
            self.imap.uid("STORE", uid, "+FLAGS", "(\\Seen \\Flagged)" if flag else "(\\Seen)")
            if not move:
                return
            if self._move:
                self.imap.uid("MOVE", uid, target)
            else:
                self.imap.uid("COPY", uid, target)
                self.imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
