"""Reading delivery reports: what a returned message says happened, and what to do about it.

RFC 3464 delivery-status reports and RFC 5965 (ARF) complaints are read field by field; the
non-standard formats some servers still send are left to flufl.bounce's detectors (from
Mailman). Auto-replies are recognised (RFC 3834 headers and the usual subjects) and ignored.
The policy is Mailman's in spirit: a hard bounce or a complaint suppresses at once; soft
bounces suppress after ``threshold`` of them on different issues within a window. Whether a
report may be believed at all is provenance.py's question, not this module's.

Every report is hostile: ``parse_report`` reads at most MAX_REPORT_BYTES, refuses a structure
deeper or wider than a delivery report ever is before the email package sees it, and never
raises: what it cannot read is UNREADABLE, with the reason, for the caller to quarantine.
"""

from __future__ import annotations

import codecs
import email
import email.message
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

__all__ = [
    "MAX_REPORT_BYTES",
    "Action",
    "Category",
    "Policy",
    "Report",
    "category_of",
    "classify_status",
    "parse_report",
    "sender_side",
]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|vacation|"
    r"away from my (e-?mail|desk)|abwesenheit|r[ée]ponse automatique|absence)",
    re.IGNORECASE,
)
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|mailbox unavailable|"
    r"recipient (address )?rejected|address rejected|not found|invalid recipient|unrouteable",
    re.IGNORECASE,
)
# The words of a refusal that is about our sender, not the recipient (Postfix, Exim, Sendmail).
_SENDER_SIDE = re.compile(
    r"sender address rejected|sender (address|domain)[^.;]{0,40}(not found|unknown|invalid|does not exist|"
    r"not resolv|rejected)|sender verif(y|ication) fail|bad sender|domain of sender address",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]+")
MAX_DIAGNOSTIC = 300
MAX_REPORT_BYTES = 10 * 1024 * 1024  # a report is small; a bigger message is quarantined unread
# A delivery report nests three or four containers deep and has a handful of parts; these bounds
# are far above any real one and far below what makes the email package recurse to death.
MAX_CONTAINERS = 40
MAX_PARTS = 400
MAX_BLOCKS = 100  # per-recipient blocks read from one delivery-status part
_CONTAINER = re.compile(rb"^content-type:\s*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)
_PART = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)


class Category(enum.Enum):
    HARD = "hard"  # the address does not exist or is disabled (5.1.x, 5.2.1)
    SOFT = "soft"  # full mailbox (5.2.2), temporary (4.x.x), or a permanent refusal of no known kind
    POLICY = "policy"  # refused for the sender's or the network's sake (5.7.x, 5.3.x, 5.4.x): not the address
    COMPLAINT = "complaint"  # the recipient marked the message as spam (ARF)
    UNREADABLE = "unreadable"  # too big, too deep or broken: quarantined, with the reason
    AUTO_REPLY = "auto-reply"  # vacation or out-of-office: ignored
    DELAYED = "delayed"  # a warning that delivery is still being tried: ignored
    UNKNOWN = "unknown"  # not a report this reader understands: left for a person


class Action(enum.Enum):
    SUPPRESSED = "suppressed"
    COUNTED = "counted"  # a soft bounce below the threshold
    IGNORED = "ignored"  # auto-reply, delay warning, or no recipient found
    UNRECOGNISED = "unrecognised"
    DUPLICATE = "duplicate"  # this report was processed before
    UNVERIFIED = "unverified"  # it names one of ours but proves nothing: recorded, never acted on
    QUARANTINED = "quarantined"  # unreadable: recorded with the reason, set aside in the mailbox


@dataclass(frozen=True)
class Report:
    """What one returned message says."""

    category: Category
    recipients: tuple[str, ...] = ()  # as the report names them (lower-cased domain not assumed)
    status: str = ""  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # the remote server's words, cleaned of control characters
    # The recipients come only from the quoted message's To: (a complaint without Original-Rcpt-To),
    # which feedback loops redact or rewrite: shown, but not a claim a proof has to agree with.
    quoted_only: bool = False


@dataclass(frozen=True)
class Policy:
    soft_threshold: int = 3
    window_days: float = 30.0

    def decide(self, category: Category, soft_issues_in_window: int) -> Action:
        """``soft_issues_in_window`` counts distinct issues with a soft bounce, this one included."""
        if category is Category.UNREADABLE:
            return Action.QUARANTINED
        if category in (Category.HARD, Category.COMPLAINT):
            return Action.SUPPRESSED
        if category is Category.SOFT:
            return Action.SUPPRESSED if soft_issues_in_window >= self.soft_threshold else Action.COUNTED
        ignored = (Category.AUTO_REPLY, Category.DELAYED, Category.POLICY)
        return Action.IGNORED if category in ignored else Action.UNRECOGNISED


def category_of(klass: int, subject: int, detail: int) -> Category:
    """What an RFC 3463 status says about the address, the one rule for SMTP replies and reports.

    Codes that describe our side say nothing against the recipient and suppress nobody: X.1.7
    and X.1.8 (the sender's address or domain was refused), X.5.x (protocol), X.6.x (content)
    and X.7.x (policy: spam, DMARC, relaying); so do 5.3.x and 5.4.x (the remote system, the
    network). Hard: 5.1.x and 5.2.1. Soft: 4.x.x, 5.2.2 and the rest.
    """
    if (subject == 1 and detail in (7, 8)) or subject in (5, 6, 7):
        return Category.POLICY
    if klass == 5 and (subject == 1 or (subject, detail) == (2, 1)):
        return Category.HARD
    if klass == 5 and subject in (3, 4):
        return Category.POLICY
    return Category.SOFT


def sender_side(words: str) -> bool:
    """A refusal whose words are about our sender ("Sender address rejected"), whatever its code."""
    return bool(_SENDER_SIDE.search(words))


def classify_status(status: str, diagnostic: str = "") -> Category:
    """The category of a report's status code (``category_of``); a refusal whose words are about
    our sender is policy whatever its code; without a code, the words."""
    if sender_side(diagnostic):
        return Category.POLICY
    match = _STATUS.search(status) or _STATUS.search(diagnostic)
    if match is None:
        return Category.HARD if _UNKNOWN_USER.search(diagnostic) else Category.SOFT
    klass, subject, detail = (int(group) for group in match.groups())
    return category_of(klass, subject, detail)


def clean(text: str | None, limit: int = MAX_DIAGNOSTIC) -> str:
    return _CONTROL.sub(" ", str(text or "")).strip()[:limit]


def _address(field: str | None) -> str:
    """``rfc822; Ada@Example.org`` -> ``Ada@Example.org``."""
    value = clean(field).rpartition(";")[2].strip().strip("<>").strip()
    return value if "@" in value and " " not in value else ""


def _parts(msg: Message) -> Iterator[Message]:
    yield from msg.walk()


def _field_blocks(part: Message) -> list[Message]:
    """The per-message and per-recipient blocks of a delivery-status or feedback part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)][:MAX_BLOCKS]
    text = payload if isinstance(payload, str) else ""
    chunks = [chunk for chunk in re.split(r"\n\s*\n", text, maxsplit=MAX_BLOCKS) if chunk.strip()]
    return [email.message_from_string(chunk.strip() + "\n") for chunk in chunks[:MAX_BLOCKS]]


def _from_dsn(part: Message) -> Report:
    failed: list[tuple[tuple[str, ...], str, str]] = []
    delayed = False
    for block in _field_blocks(part)[1:]:
        action = clean(block.get("Action")).lower()
        # Both: a forwarded address's report names our recipient as Original-Recipient only.
        named = (_address(block.get("Original-Recipient")), _address(block.get("Final-Recipient")))
        recipient = tuple(dict.fromkeys(r for r in named if r))
        status = clean(block.get("Status"), 20)
        diagnostic = clean(block.get("Diagnostic-Code")).partition(";")[2].strip() or clean(
            block.get("Diagnostic-Code")
        )
        if action == "failed":  # even with an unreadable recipient: the VERP token may name it
            failed.append((recipient, status, diagnostic))
        elif action == "delayed":
            delayed = True
    if not failed:
        return Report(Category.DELAYED if delayed else Category.UNKNOWN)
    _, status, diagnostic = failed[0]
    category = classify_status(status, diagnostic)
    return Report(category, tuple(dict.fromkeys(r for named, _, _ in failed for r in named)), status, diagnostic)


def _from_arf(msg: Message, part: Message) -> Report:
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else Message()
    recipients = [_address(v) for v in fields.get_all("Original-Rcpt-To", [])]
    quoted_only = not any(recipients)
    if quoted_only:
        for inner in _parts(msg):
            if inner.get_content_type() in ("message/rfc822", "text/rfc822-headers") and inner is not part:
                original = _original_headers(inner)
                recipients = [_address(original.get("To"))] if original is not None else []
    feedback = clean(fields.get("Feedback-Type"), 40) or "abuse"
    agent = clean(fields.get("User-Agent"), 80)
    diagnostic = f"feedback report: {feedback}" + (f" ({agent})" if agent else "")
    return Report(Category.COMPLAINT, tuple(r for r in recipients if r), "", diagnostic, quoted_only)


def _original_headers(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return email.message_from_string(payload)
    return None


def _has_auto_reply_headers(msg: Message) -> bool:
    """RFC 3834 and its forerunners. Exim marks its own bounces this way too, so these headers
    only decide once the bounce detectors have found nothing."""
    auto = clean(msg.get("Auto-Submitted")).lower()
    if auto.startswith("auto-replied") or msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    return clean(msg.get("Precedence")).lower() == "auto_reply"


def _from_heuristics(msg: Message) -> Report | None:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on hostile input must not stop the whole run
        return None
    found = [r.decode("utf-8", "replace") for r in sorted(permanent or temporary)]
    recipients = tuple(a for a in (_address(r) for r in found) if a)
    if not recipients:
        return None
    body = _text_of(msg)
    lines = body.splitlines()
    line = next((ln for ln in lines if _STATUS.search(ln)), "") or next(
        (ln for ln in lines if re.search(r"\b[45]\d\d\b", ln)), ""
    )
    status_match = _STATUS.search(line)
    status = ".".join(status_match.groups()) if status_match else ""
    category = Category.SOFT
    if permanent:
        sender_side = _SENDER_SIDE.search(line)
        category = classify_status(status, line) if status or sender_side else Category.HARD
    return Report(category, recipients, status, clean(line))


def _text_of(msg: Message) -> str:
    chunks = []
    for part in _parts(msg):
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                chunks.append(_decode(payload, part.get_param("charset")))
    return "\n".join(chunks)


def _decode(payload: bytes, charset: object) -> str:
    """Text in the charset a part declares, or UTF-8 when it declares one Python does not know
    (``x-bogus``, a NUL inside the name, an RFC 2231 tuple): a report's charset is hostile input."""
    name = charset if isinstance(charset, str) else ""
    try:
        codec = codecs.lookup(name).name if name and name.isprintable() and len(name) < 40 else "utf-8"
    except (LookupError, ValueError):
        codec = "utf-8"
    try:
        return payload.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):  # a codec that is not a text codec (base64, rot13...)
        return payload.decode("utf-8", "replace")


def _too_big_or_deep(data: bytes) -> str:
    """Why a message is not even to be parsed, or ''. Counted on the bytes, before the email
    package (whose parser and ``walk`` recurse once per nested container) sees it."""
    if len(data) > MAX_REPORT_BYTES:
        return f"larger than {MAX_REPORT_BYTES // (1024 * 1024)} MB, the most a delivery report may be: not read"
    if len(_CONTAINER.findall(data)) > MAX_CONTAINERS:
        return f"more than {MAX_CONTAINERS} nested multipart or message parts: not parsed"
    if len(_PART.findall(data)) > MAX_PARTS:
        return f"more than {MAX_PARTS} parts: not parsed"
    return ""


def parse_report(data: bytes) -> Report:
    """What a returned message says. Never raises: a message too big, too deep or too wide is
    UNREADABLE with the reason, as is one that trips up a decoder in a way nobody foresaw."""
    problem = _too_big_or_deep(data)
    if problem:
        return Report(Category.UNREADABLE, diagnostic=problem)
    try:
        return _read(email.message_from_bytes(data))
    except Exception as exc:  # a hostile report must never stop the run: it is quarantined instead
        return Report(Category.UNREADABLE, diagnostic=clean(f"cannot be read: {type(exc).__name__}: {exc}", 200))


def _read(msg: Message) -> Report:
    for part in _parts(msg):
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            return _from_arf(msg, part)
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            report = _from_dsn(part)
            if report.category is not Category.UNKNOWN:
                return report
    if _AUTO_SUBJECT.match(clean(msg.get("Subject"))):
        return Report(Category.AUTO_REPLY)
    guessed = _from_heuristics(msg)
    if guessed is not None:
        return guessed
    return Report(Category.AUTO_REPLY if _has_auto_reply_headers(msg) else Category.UNKNOWN)
