"""An explicit, checked fast path for aiosmtplib's DATA command and its address quoting.

aiosmtplib runs two regex passes over every message before DATA (line endings to CRLF, then
dot-stuffing); on an 83 KB message they cost more than everything else we do per message, and
our envelopes never need either (CRLF only, no line starting with a period: see compose/wire.py).
``install`` swaps those two module globals of ``aiosmtplib.protocol`` for versions that return
the message unchanged when the pass cannot change it (a ``WireReady`` message was checked when it
was built; any other is scanned) and call aiosmtplib's own code otherwise, so the bytes on the
wire are the same for any message. It also swaps ``aiosmtplib.smtp.quote_address``: a plain
address (the only kind we send to) goes in angle brackets directly, without the
``email.utils.parseaddr`` that gives the same result; any other takes aiosmtplib's own function.

It is installed by the SMTP transport when it is created, never on import, and only when the
targets are exactly the code it was written against (source digests of the aiosmtplib versions
tested, see pyproject.toml): with any other aiosmtplib it stays off and aiosmtplib's own, slower
path runs. ``uninstall`` puts the originals back.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosmtplib.email as aio_email
import aiosmtplib.protocol
import aiosmtplib.smtp

from ..compose.wire import WireReady

__all__ = ["FastPathState", "install", "state", "uninstall"]

# sha256 of the source of normalize_message_line_endings and SMTPProtocol.execute_data_command,
# and of quote_address with the two functions it calls (one digest of the three digests), in the
# aiosmtplib versions tested with this fast path (5.1.3).
KNOWN_SOURCES: frozenset[tuple[str, str, str]] = frozenset(
    {
        (
            "b2996d67955888e8fa72e0119561e7c4e62270dd832a4c77ef5eb51aedfa89fc",
            "a55f9634add2db0870711d0cac99ccba3240e58cb14deabdf7b9b12148b3060a",
            "90c42eda6c910291e01483a7c0736c0a9b26d9c04d6fd5176dd819fcca125b0d",
        )
    }
)
_PERIOD = re.compile(rb"(?m)^\.")
# An address that email.utils.parseaddr returns unchanged and aiosmtplib's check accepts: an
# RFC 5322 dot-atom local part and a domain of LDH labels, ASCII only (anything else takes the
# original path). tests/send/test_fastpath.py compares the two on generated addresses.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")
_lock = threading.Lock()


@dataclass(frozen=True)
class FastPathState:
    active: bool
    reason: str  # why it is off, or what it replaced


_state = FastPathState(False, "not installed")


class _FastNormalize:
    """aiosmtplib's line-ending normalisation, skipped for a message that is already CRLF only."""

    def __init__(self, original: Callable[[bytes], bytes]) -> None:
        self.original = original

    def __call__(self, message: bytes) -> bytes:
        if isinstance(message, WireReady):  # checked when it was built: nothing to repair
            return message
        crlf = message.count(b"\r\n")
        if crlf == message.count(b"\n") == message.count(b"\r") and message.endswith(b"\r\n"):
            return message
        return self.original(message)


class _FastPeriod:
    """aiosmtplib's dot-stuffing regex, skipped when no line starts with a period."""

    def __init__(self, original: re.Pattern[bytes]) -> None:
        self.original = original

    def sub(self, replacement: bytes, message: bytes) -> bytes:
        if isinstance(message, WireReady):
            return message
        if not message.startswith(b".") and b"\n." not in message:  # "(?m)^" matches only after "\n"
            return message
        return self.original.sub(replacement, message)


class _FastQuote:
    """aiosmtplib's ``quote_address`` (parseaddr, then a check for injected characters): for a
    plain address both leave it as it is, so it is only put in angle brackets."""

    def __init__(self, original: Callable[[str], str]) -> None:
        self.original = original

    def __call__(self, address: str) -> str:
        if _PLAIN_ADDRESS.fullmatch(address):
            return f"<{address}>"
        return self.original(address)


def _digest(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode("utf-8")).hexdigest()


def _incompatible() -> str:
    """Why the fast path must stay off with the aiosmtplib installed, or "" when it fits."""
    protocol = aiosmtplib.protocol
    normalize = getattr(protocol, "normalize_message_line_endings", None)
    period = getattr(protocol, "PERIOD_REGEX", None)
    execute = getattr(getattr(protocol, "SMTPProtocol", None), "execute_data_command", None)
    if normalize is None or period is None or execute is None:
        return "aiosmtplib.protocol has no normalize_message_line_endings, PERIOD_REGEX or execute_data_command"
    if not isinstance(period, re.Pattern) or (period.pattern, period.flags) != (_PERIOD.pattern, _PERIOD.flags):
        return "aiosmtplib.protocol.PERIOD_REGEX is not the dot-stuffing pattern it replaces"
    names = set(execute.__code__.co_names)
    if not {"normalize_message_line_endings", "PERIOD_REGEX"} <= names:
        return "execute_data_command no longer uses the functions it replaces"
    quoting = _quoting_problem()
    if quoting:
        return quoting
    try:
        quote = hashlib.sha256(
            "".join(
                _digest(f) for f in (aio_email.quote_address, aio_email.parse_address, aio_email._validate_address)
            ).encode()
        ).hexdigest()
        sources = (_digest(normalize), _digest(execute), quote)
    except (OSError, TypeError):
        return "the source of aiosmtplib is not available to check"
    if sources not in KNOWN_SOURCES:
        return f"aiosmtplib {getattr(aiosmtplib, '__version__', '?')} is not a version this fast path was tested with"
    return ""


def _quoting_problem() -> str:
    smtp = aiosmtplib.smtp
    if getattr(smtp, "quote_address", None) is not getattr(aio_email, "quote_address", object()):
        return "aiosmtplib.smtp.quote_address is not aiosmtplib.email.quote_address"
    if not all(hasattr(aio_email, name) for name in ("parse_address", "_validate_address")):
        return "aiosmtplib.email has no parse_address or _validate_address"
    for name in ("mail", "rcpt"):
        code = getattr(getattr(getattr(smtp, "SMTP", None), name, None), "__code__", None)
        if code is None or "quote_address" not in code.co_names:
            return f"SMTP.{name} no longer uses quote_address"
    return ""


def install() -> FastPathState:
    """Turn the fast path on if the installed aiosmtplib is one it fits; idempotent."""
    global _state
    with _lock:
        if _state.active:
            return _state
        reason = _incompatible()
        if reason:
            _state = FastPathState(False, reason)
            return _state
        protocol: Any = aiosmtplib.protocol
        protocol.normalize_message_line_endings = _FastNormalize(protocol.normalize_message_line_endings)
        protocol.PERIOD_REGEX = _FastPeriod(protocol.PERIOD_REGEX)
        smtp: Any = aiosmtplib.smtp
        smtp.quote_address = _FastQuote(smtp.quote_address)
        _state = FastPathState(
            True, f"aiosmtplib {aiosmtplib.__version__}: DATA and addresses skip passes that change nothing"
        )
        return _state


def uninstall() -> None:
    """Put aiosmtplib's own functions back."""
    global _state
    with _lock:
        protocol: Any = aiosmtplib.protocol
        normalize = getattr(protocol, "normalize_message_line_endings", None)
        if isinstance(normalize, _FastNormalize):
            protocol.normalize_message_line_endings = normalize.original
        period: Any = getattr(protocol, "PERIOD_REGEX", None)
        if isinstance(period, _FastPeriod):
            protocol.PERIOD_REGEX = period.original
        smtp: Any = aiosmtplib.smtp
        quote = getattr(smtp, "quote_address", None)
        if isinstance(quote, _FastQuote):
            smtp.quote_address = quote.original
        _state = FastPathState(False, "uninstalled")


def state() -> FastPathState:
    return _state
