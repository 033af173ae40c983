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
from email.quoprimime import body_encode
from urllib.parse import quote

from ..audience.links import TokenSigner
from ..audience.subscribers import Subscriber
from ..audience.verp import VerpCodec
from ..config import Settings
from .bidi import isolate
from .dkim import DkimSigner, TemplateSigner
from .headers import feedback_id, mailbox, unstructured
from .i18n import page_language
from .merge import ESCAPERS, Context, html_contexts, text_contexts
from .render import RenderedIssue
from .wire import WirePlan, WireReady

ContextFinder = Callable[[str, "re.Pattern[str]"], Iterable[tuple["re.Match[str]", Context]]]


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, ready for the transport."""

    sender: str
    recipient: str
    data: bytes
    message_id: str


def qp(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF line ends and lines of at most 76 octets.

    A period that starts a line is written =2E, so no line of a message ever needs SMTP
    dot-stuffing (the transport then skips a pass over every message).
    """
    latin = text.encode("utf-8").decode("latin-1")  # body_encode works on octets held in a str
    encoded = body_encode(latin, maxlinelen=74, eol="\r\n").encode("ascii")
    encoded = encoded.replace(b"\r\n.", b"\r\n=2E")
    return b"=2E" + encoded[1:] if encoded.startswith(b".") else encoded


def qp_value(value: str) -> bytes:
    """A value as quoted-printable, safe between two soft line breaks."""
    if value.isascii() and value.isprintable():  # QP leaves such text as it is, but for "="
        if "=" in value:
            escaped = value.replace("=", "=3D")  # such as <span dir="auto">, around every name
            if len(escaped) <= 73 and not escaped.startswith("."):
                return escaped.encode("ascii")
        elif len(value) <= 73 and not value.startswith("."):
            return value.encode("ascii")
        else:
            raw = value.encode("ascii")
            chunks = [raw[i : i + 73] for i in range(0, len(raw), 73)]
            return b"=\r\n".join([b"=2E" + c[1:] if c[:1] == b"." else c for c in chunks])
    return qp(value.replace("\r", " ").replace("\n", " "))


def format_to(name: str, address: str) -> str:
    """The To header's value for one recipient (folded, never more than 998 characters a line)."""
    return mailbox("To", name, address).decode("utf-8")


def _text_header(name: str, value: str) -> bytes:
    return f"{name}: ".encode("ascii") + unstructured(name, value) + b"\r\n"


FEEDBACK_MAIL_TYPE = "newsletter"  # Feedback-ID's third field: the kind of mail
_HEADER_SLOTS = ("to", "date", "message_id", "unsubscribe_url", "subject")


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
        dkim: DkimSigner | None = None,
    ) -> None:
        self.rendered = rendered
        self.settings = settings
        self.signer = signer
        self.unique_ids = unique_ids
        news = settings.newsletter
        # The envelope sender: the bounce address if there is one, else From; with a bounce address
        # each journal row gets its own (VERP).
        bounce_to = settings.bounces.address
        self.sender = bounce_to or news.from_
        self._verp = VerpCodec.from_signer(signer, bounce_to) if bounce_to else None
        self._base_url = news.base_url
        # A reader's links open the pages in their language (web/unsubscribe.py reads ?lang=,
        # validated there again), even when no translation of the issue is in it; the main
        # language's links stay as they always were.
        self._offered, self._main = news.offered_languages, news.language
        own = rendered.language
        self._page_queries = {"": "" if own.lower() == news.language.lower() else f"?lang={quote(own, safe='-')}"}
        self._domain = news.from_domain
        self._issue_key = rendered.issue.key.encode("utf-8")
        self._message_id_key = signer.message_id_key()
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

        literal(b"From: " + mailbox("From", news.from_display_name, news.from_) + b"\r\n")
        literal(b"To: ")
        slot("to")
        literal(b"\r\n")
        if self._subject_has_fields:
            literal(b"Subject: ")
            slot("subject")
            literal(b"\r\n")
        else:
            literal(_text_header("Subject", subject))
        literal(b"Date: ")
        slot("date")
        literal(b"\r\nMessage-ID: ")
        slot("message_id")
        literal(b"\r\n")
        if news.reply_to:
            literal(b"Reply-To: " + mailbox("Reply-To", news.reply_to_name, news.reply_to) + b"\r\n")
        literal(b"List-Id: " + mailbox("List-Id", news.name, news.list_id_value) + b"\r\n")
        literal(b"List-Unsubscribe: ")
        if news.unsubscribe_mailto:
            literal(f"<mailto:{news.unsubscribe_mailto}?subject=unsubscribe>,\r\n ".encode("ascii"))
        literal(b"<")
        slot("unsubscribe_url")
        literal(b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        if settings.deliverability.feedback_id_sender:
            # One value for the whole issue: Postmaster Tools groups spam rates by these fields.
            fields = (rendered.issue.key, news.list_id_value, FEEDBACK_MAIL_TYPE)
            literal(b"Feedback-ID: " + feedback_id(*fields, settings.deliverability.feedback_id_sender) + b"\r\n")
        literal(b"MIME-Version: 1.0\r\n")
        literal(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"))
        literal(b"This is a multi-part message in MIME format.\r\n")
        for subtype, body, contexts in (
            ("plain", rendered.text, text_contexts),
            ("html", rendered.html, html_contexts),
        ):
            literal(
                f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
            )
            body = body.replace("\r\n", "\n")
            position = 0
            for match, context in contexts(body, self._fields.pattern):
                literal(qp(body[position : match.start()]))
                literal(b"=\r\n")
                slot(match.group(1), context)
                literal(b"=\r\n")
                position = match.end()
            literal(qp(body[position:]))
            literal(b"\r\n")
        literal(f"--{boundary}--\r\n".encode("ascii"))
        literals, keys = self._merge(parts)
        self._frame: list[bytes] = [b""] * (2 * len(keys) + 1)
        self._frame[0::2] = literals  # the odd places take each recipient's values
        # Each slot becomes an index into the list ``envelope`` fills per recipient: the header
        # values first, then one entry per distinct (field, context) of the bodies.
        self._body_keys = tuple(dict.fromkeys(k for k in keys if k[1] is not None))
        self._body_plan = tuple(
            (int(name), ESCAPERS[context]) for name, context in self._body_keys if context is not None
        )
        order: dict[tuple[str, Context | None], int] = {(h, None): i for i, h in enumerate(_HEADER_SLOTS)}
        order.update({k: len(_HEADER_SLOTS) + i for i, k in enumerate(self._body_keys)})
        self._refs = tuple(order[k] for k in keys)
        self.dkim = TemplateSigner(dkim, literals) if dkim is not None else None  # signs the way we fill
        self._wire = WirePlan(literals)

    @staticmethod
    def _merge(parts: list[_Part]) -> tuple[list[bytes], list[tuple[str, Context | None]]]:
        literals: list[bytes] = [b""]
        keys: list[tuple[str, Context | None]] = []
        for part in parts:
            if part.key is None:
                literals[-1] += part.literal
            else:
                keys.append(part.key)
                literals.append(b"")
        return literals, keys

    def message_id(self, address: str) -> str:
        """Stable per (issue, recipient), so a resent copy carries the same Message-ID and
        receiving systems can fold the duplicate; test sends get a fresh one each time. Keyed
        with the workspace secret: an unkeyed hash would give the address away to a guess."""
        seed = self._issue_key + b"\x00" + address.encode("utf-8")
        if self.unique_ids:
            seed += secrets.token_bytes(8)
        digest = hashlib.blake2b(seed, digest_size=15, key=self._message_id_key).hexdigest()
        return f"<{digest}@{self._domain}>"

    def _now(self) -> str:
        second = int(time.time())
        if self._date[1] != second:
            self._date = (email.utils.formatdate(second, localtime=True), second)
        return self._date[0]

    def _page_query(self, subscriber: Subscriber) -> str:
        """``?lang=xx`` for a reader whose language cell names one the pages can show; one look-up
        per recipient once a cell has been seen (a few hundred distinct cells at most are kept)."""
        cell = ""
        for key, value in subscriber.fields:  # a loop, not next() over a generator: per recipient
            if key == "language":
                cell = value
                break
        query = self._page_queries.get(cell)
        if query is None:
            language = page_language(cell, self._offered, self._main)
            query = "" if language == self._main else f"?lang={quote(language, safe='-')}"
            if len(self._page_queries) < 256:
                self._page_queries[cell] = query
        return query

    def envelope(self, subscriber: Subscriber, row: int = 0) -> Envelope:
        """The message for one recipient; ``row`` is its journal row, named by the VERP sender."""
        address = subscriber.email
        url = self.signer.unsubscribe_url(self._base_url, address) + self._page_query(subscriber)
        values = self._fields.values(subscriber.merge_values(), url)
        message_id = self.message_id(address)
        subject = b""
        if self._subject_has_fields:
            subject = unstructured("Subject", self._fields.render_header(self._subject, values))
        filled = [
            mailbox("To", isolate(subscriber.name), address),
            self._now().encode("ascii"),
            message_id.encode("ascii"),
            url.encode("ascii"),
            subject,
        ]
        filled += [qp_value(escape(values[index])) for index, escape in self._body_plan]
        pieces = self._frame.copy()
        pieces[1::2] = [filled[i] for i in self._refs]
        joined = b"".join(pieces)
        data = joined if self.dkim is None else self.dkim.sign(pieces, joined)
        if self._wire.fits(pieces, data[: len(data) - len(joined)]):
            data = WireReady(data)
        sender = self._verp.sender(row) if self._verp and row else self.sender
        return Envelope(sender=sender, recipient=address, data=data, message_id=message_id)


def preview_subscriber(settings: Settings) -> Subscriber:
    """The recipient shown in previews and in the rendered .eml."""
    address = settings.newsletter.test_recipients[0] if settings.newsletter.test_recipients else "reader@example.org"
    return Subscriber(email=address, name="Sam Example")


def fill_preview(
    rendered: RenderedIssue, settings: Settings, signer: TokenSigner, subscriber: Subscriber
) -> tuple[str, str]:
    """HTML and text with one recipient's values, for previews and the rendered files."""
    url = signer.unsubscribe_url(settings.newsletter.base_url, subscriber.email)
    values = rendered.fields.values(subscriber.merge_values(), url)

    def fill(body: str, contexts: ContextFinder) -> str:
        out, position = [], 0
        for match, context in contexts(body, rendered.fields.pattern):
            out += [body[position : match.start()], ESCAPERS[context](values[int(match.group(1))])]
            position = match.end()
        out.append(body[position:])
        return "".join(out)

    return fill(rendered.html, html_contexts), fill(rendered.text, text_contexts)
