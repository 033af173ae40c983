"""Per-recipient messages: the MIME message is encoded once per issue, with slots where each
recipient's values go; filling it is a join over bytes, not a new EmailMessage.

Bodies are quoted-printable (no line over 76 octets); each slot sits between soft line breaks so
a value of any length never makes a line too long.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.quoprimime import body_encode

from .config import Settings
from .links import TokenSigner
from .merge import ESCAPERS, Context, html_contexts, text_contexts
from .render import RenderedIssue
from .subscribers import Subscriber, clean_value

ContextFinder = Callable[[str, "re.Pattern[str]"], Iterable[tuple["re.Match[str]", Context]]]
_SAFE_QP = re.compile(r"^[\x21-\x3c\x3e-\x7e ]{0,70}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9 !#$%&'*+\-/=?^_`{|}~.]*$")


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, ready for the transport."""

    sender: str
    recipient: str
    data: bytes
    message_id: str


Signer = Callable[[bytes], bytes]  # adds a DKIM-Signature to a finished message


def qp(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF line ends and lines of at most 76 octets."""
    latin = text.encode("utf-8").decode("latin-1")  # body_encode works on octets held in a str
    return body_encode(latin, maxlinelen=76, eol="\r\n").encode("ascii")


def qp_value(value: str) -> bytes:
    """A value as quoted-printable, safe between two soft line breaks."""
    if _SAFE_QP.match(value):
        return value.encode("ascii")
    return qp(value.replace("\r", " ").replace("\n", " "))


def format_to(name: str, address: str) -> str:
    name = clean_value(name)
    if not name:
        return f"<{address}>"
    if _SAFE_NAME.match(name):
        return f"{name} <{address}>" if "." not in name else f'"{name}" <{address}>'
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    encoded = Header(name, "utf-8").encode(linesep="\r\n")
    return f"{encoded} <{address}>"


def _fold(name: str, value: str) -> bytes:
    """A header line, RFC 2047-encoded where needed and folded, ending in CRLF."""
    header = policy.SMTP.header_factory(name, value)
    folded: str = header.fold(policy=policy.SMTP)
    return folded.encode("ascii")


@dataclass(frozen=True)
class _Part:
    literal: bytes
    key: tuple[str, Context | None] | None  # the slot after the literal


class MessageTemplate:
    """An issue's message for every recipient: built once, filled per recipient."""

    def __init__(
        self,
        rendered: RenderedIssue,
        settings: Settings,
        signer: TokenSigner,
        *,
        subject_prefix: str = "",
        unique_ids: bool = False,
        dkim: Signer | None = None,
    ) -> None:
        self.rendered = rendered
        self.settings = settings
        self.signer = signer
        self.dkim = dkim
        self.unique_ids = unique_ids
        news = settings.newsletter
        self.sender = news.from_
        self._base_url = news.base_url
        self._domain = news.from_domain
        self._issue_key = rendered.issue.key.encode("utf-8")
        self._fields = rendered.fields
        self._date = ("", 0)
        subject = subject_prefix + rendered.subject
        self._subject_has_fields = bool(self._fields.pattern.search(subject))
        self._subject = subject
        boundary = f"=_nlm_{secrets.token_hex(12)}"
        parts: list[_Part] = []

        def literal(data: bytes) -> None:
            parts.append(_Part(data, None))

        def slot(name: str, context: Context | None = None) -> None:
            parts.append(_Part(b"", (name, context)))

        literal(_fold("From", email.utils.formataddr((news.name, news.from_))))
        literal(b"To: ")
        slot("to")
        literal(b"\r\n")
        if self._subject_has_fields:
            literal(b"Subject: ")
            slot("subject")
            literal(b"\r\n")
        else:
            literal(_fold("Subject", subject))
        literal(b"Date: ")
        slot("date")
        literal(b"\r\nMessage-ID: ")
        slot("message_id")
        literal(b"\r\n")
        if news.reply_to:
            literal(_fold("Reply-To", news.reply_to))
        literal(_fold("List-Id", f"{news.name} <{news.list_id_value}>"))
        literal(b"List-Unsubscribe: ")
        if news.unsubscribe_mailto:
            literal(f"<mailto:{news.unsubscribe_mailto}?subject=unsubscribe>,\r\n ".encode("ascii"))
        literal(b"<")
        slot("unsubscribe_url")
        literal(b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        literal(b"MIME-Version: 1.0\r\n")
        literal(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"))
        literal(b"This is a multi-part message in MIME format.\r\n")
        for subtype, body, contexts in (
            ("plain", rendered.text, text_contexts),
            ("html", rendered.html, html_contexts),
        ):
            literal(
                f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
            )
            body = body.replace("\r\n", "\n")
            position = 0
            for match, context in contexts(body, self._fields.pattern):
                literal(qp(body[position:match.start()]))
                literal(b"=\r\n")
                slot(match.group(1), context)
                literal(b"=\r\n")
                position = match.end()
            literal(qp(body[position:]))
            literal(b"\r\n")
        literal(f"--{boundary}--\r\n".encode("ascii"))
        self._parts, self._keys = self._merge(parts)
        self._body_keys = tuple(sorted({k for k in self._keys if k[1] is not None},
                                       key=lambda k: (k[0], k[1].value if k[1] else "")))

    @staticmethod
    def _merge(parts: list[_Part]) -> tuple[tuple[bytes, ...], tuple[tuple[str, Context | None], ...]]:
        literals: list[bytes] = [b""]
        keys: list[tuple[str, Context | None]] = []
        for part in parts:
            if part.key is None:
                literals[-1] += part.literal
            else:
                keys.append(part.key)
                literals.append(b"")
        return tuple(literals), tuple(keys)

    def message_id(self, address: str) -> str:
        """Stable per (issue, recipient), so a resent copy carries the same Message-ID and
        receiving systems can fold the duplicate; test sends get a fresh one each time."""
        seed = self._issue_key + b"\x00" + address.encode("utf-8")
        if self.unique_ids:
            seed += secrets.token_bytes(8)
        digest = hashlib.blake2b(seed, digest_size=15).hexdigest()
        return f"<{digest}@{self._domain}>"

    def _now(self) -> str:
        second = int(time.time())
        if self._date[1] != second:
            self._date = (email.utils.formatdate(second, localtime=True), second)
        return self._date[0]

    def envelope(self, subscriber: Subscriber) -> Envelope:
        address = subscriber.email
        url = self.signer.unsubscribe_url(self._base_url, address)
        values = self._fields.values(subscriber.merge_values(), url)
        message_id = self.message_id(address)
        filled: dict[tuple[str, Context | None], bytes] = {
            ("to", None): format_to(subscriber.name, address).encode("utf-8"),
            ("date", None): self._now().encode("ascii"),
            ("message_id", None): message_id.encode("ascii"),
            ("unsubscribe_url", None): url.encode("ascii"),
        }
        if self._subject_has_fields:
            subject = clean_value(self._fields.render_plain(self._subject, values))
            folded = _fold("Subject", subject)
            filled[("subject", None)] = folded[len(b"Subject: "):-2]
        for key in self._body_keys:
            index, context = key
            assert context is not None
            filled[key] = qp_value(ESCAPERS[context](values[int(index)]))
        pieces = [self._parts[0]]
        for key, literal in zip(self._keys, self._parts[1:], strict=True):
            pieces.append(filled[key])
            pieces.append(literal)
        data = b"".join(pieces)
        if self.dkim is not None:
            data = self.dkim(data)
        return Envelope(sender=self.sender, recipient=address, data=data, message_id=message_id)


def preview_subscriber(settings: Settings) -> Subscriber:
    """The recipient shown in previews and in the rendered .eml."""
    address = settings.newsletter.test_recipients[0] if settings.newsletter.test_recipients else "reader@example.org"
    return Subscriber(email=address, name="Sam Example")


def fill_preview(rendered: RenderedIssue, settings: Settings, signer: TokenSigner,
                 subscriber: Subscriber) -> tuple[str, str]:
    """HTML and text with one recipient's values, for previews and the rendered files."""
    url = signer.unsubscribe_url(settings.newsletter.base_url, subscriber.email)
    values = rendered.fields.values(subscriber.merge_values(), url)

    def fill(body: str, contexts: ContextFinder) -> str:
        out, position = [], 0
        for match, context in contexts(body, rendered.fields.pattern):
            out += [body[position:match.start()], ESCAPERS[context](values[int(match.group(1))])]
            position = match.end()
        out.append(body[position:])
        return "".join(out)

    return fill(rendered.html, html_contexts), fill(rendered.text, text_contexts)

