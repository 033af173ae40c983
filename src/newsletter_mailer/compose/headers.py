"""Header fields written by hand from values that may be hostile: the value is only ever text.

A value is never parsed as RFC 2047 (a name that looks like ``=?utf-8?b?...?=`` is encoded as the
literal text it is, so no reader decodes it into CR/LF and new headers), control characters
become spaces, and every line is folded to at most 78 characters where the text allows and never
beyond 998 (RFC 5322 2.1.1), whatever the length of the value.
"""

from __future__ import annotations

import base64
import re

__all__ = ["feedback_id", "mailbox", "unstructured"]

_NOT_FEEDBACK = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_ATOMS = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")  # a phrase of atoms: no quoting needed
_SOFT_LIMIT = 78
_HARD_LIMIT = 998
_WORD_OCTETS = 45  # 60 base64 characters: an encoded-word of 72 characters, under RFC 2047's 75
_FOLD = "\r\n "


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words, each holding whole characters (never a split UTF-8 sequence)."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        octets = char.encode("utf-8")
        if len(chunk) + len(octets) > _WORD_OCTETS:
            words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
            chunk.clear()
        chunk += octets
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
    return words


def _plain(text: str) -> bool:
    """Printable ASCII that no reader could take for an encoded-word."""
    return text.isascii() and "=?" not in text


def _fold_at_spaces(label: str, text: str) -> str | None:
    """``text`` folded before spaces (unfolding gives it back exactly), or None when one word alone
    would make a line longer than 998 characters."""
    lines = [f"{label}: "]
    for index, word in enumerate(text.split(" ")):
        if index == 0:
            lines[0] += word
        elif len(lines[-1]) + 1 + len(word) <= _SOFT_LIMIT:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    if any(len(line) > _HARD_LIMIT for line in lines):
        return None
    return "\r\n".join(lines)[len(label) + 2 :]


def unstructured(label: str, value: str) -> bytes:
    """The value of an unstructured header (Subject, List-Id's phrase...), folded, without its
    label and final CRLF: ``b"Subject: " + unstructured("Subject", s) + b"\\r\\n"``."""
    text = _one_line(value)
    if _plain(text):
        if len(label) + 2 + len(text) <= _SOFT_LIMIT:
            return text.encode("ascii")
        folded = _fold_at_spaces(label, text)
        if folded is not None:
            return folded.encode("ascii")
    return _FOLD.join(_encoded_words(text)).encode("ascii")


def _phrase(name: str) -> str:
    if _plain(name) and len(name) <= _SOFT_LIMIT - 10:
        if _ATOMS.match(name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _FOLD.join(_encoded_words(name))


def mailbox(label: str, name: str, address: str) -> bytes:
    """``Name <address>``: the one writer of every header that holds an address (From, To,
    Reply-To, List-Id's label, the confirmation mail's). The name as atoms, a quoted string or
    encoded-words, the address on a line of its own when the whole would not fit in 78 characters.

    ``address`` is one already checked (email-validator, the settings' parse_mailbox); one that
    could end the header or the bracket is refused (ValueError) rather than written."""
    if not address.isprintable() or "<" in address or ">" in address:
        raise ValueError(f"not an address that can go in a {label} header: {address!r}")
    # This runs for every recipient: a short printable ASCII name skips the regex substitution.
    name = name.strip() if name.isascii() and name.isprintable() else _one_line(name)
    if not name:
        return _utf8(f"<{address}>")
    phrase = _phrase(name)
    fold = phrase.rfind("\n")
    width = len(phrase) - fold - 1 if fold >= 0 else len(label) + 2 + len(phrase)
    separator = " " if width + 3 + len(address) <= _SOFT_LIMIT else _FOLD
    return _utf8(f"{phrase}{separator}<{address}>")


def _utf8(text: str) -> bytes:
    # Only an internationalised local part (sent with SMTPUTF8) is not ASCII here.
    return text.encode("utf-8")


def feedback_id(*fields: str) -> bytes:
    """Gmail's ``Feedback-ID: a:b:c:SenderId`` value (the sender last): colons separate the fields,
    so each is cut down to letters, digits, ``.``, ``_`` and ``-`` (anything else becomes ``-``)
    and to 64 characters; an empty field stays empty, as Gmail allows for all but SenderId."""
    cleaned = [_NOT_FEEDBACK.sub("-", field).strip("-")[:64] for field in fields]
    return unstructured("Feedback-ID", ":".join(cleaned))
