"""Messages as SMTP carries them: DATA wants CRLF line ends only and a period doubled where it
starts a line. Our messages are built that way (headers folded with CRLF, bodies in
quoted-printable with a leading period written =2E), so both of aiosmtplib's passes over each
message change nothing; ``WireReady`` marks a message for which that was checked, and the
transport's fast path (send/fastpath.py) then skips the passes.

The check is cheap because it follows the template: the fixed literals are checked once per
issue, and per recipient only the filled values and the edges where they meet a literal.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WirePlan", "WireReady", "on_the_wire_as_is"]


class WireReady(bytes):
    """Message bytes checked to need neither line-ending repair nor dot-stuffing on the wire."""


def _paired(piece: bytes) -> bool:
    """Every CR and LF in ``piece`` is one of a CRLF (so none can pair across its edges), and no
    line inside it starts with a period."""
    if b"\r" not in piece and b"\n" not in piece:
        return True
    bare = piece.replace(b"\r\n", b"")
    return b"\r" not in bare and b"\n" not in bare and b"\n." not in piece


def on_the_wire_as_is(message: bytes) -> bool:
    """The whole-message check (what aiosmtplib's passes would change), for any message."""
    return _paired(message) and not message.startswith(b".") and message.endswith(b"\r\n")


class WirePlan:
    """The literals of a template, checked once; ``fits`` checks one recipient's values."""

    def __init__(self, literals: Sequence[bytes]) -> None:
        self.usable = (
            bool(literals)
            and all(map(_paired, literals))
            and not literals[0].startswith(b".")
            and literals[-1].endswith(b"\r\n")
        )
        # Per value slot: does a line start just before it, does a period start just after it.
        self._line_start = tuple(literal.endswith(b"\n") for literal in literals[:-1])
        self._dot_after = tuple(literal.startswith(b".") for literal in literals[1:])

    def fits(self, pieces: Sequence[bytes], prefix: bytes = b"") -> bool:
        """``prefix`` (fields set in front, such as DKIM-Signature) and the template filled with
        ``pieces`` (literals at even places, values at odd ones) go on the wire as they are."""
        if not self.usable or (prefix and not on_the_wire_as_is(prefix)):
            return False
        for value, line_start, dot_after in zip(pieces[1::2], self._line_start, self._dot_after, strict=True):
            if not _paired(value):
                return False
            if line_start and value.startswith(b"."):
                return False
            if dot_after and (value.endswith(b"\n") or (not value and line_start)):
                return False
        return True
