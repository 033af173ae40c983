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
        # The slots where either matters (few: most values sit inside a line).
        self._starts = tuple(i for i, start in enumerate(self._line_start) if start)
        self._dots = tuple(i for i, dot in enumerate(self._dot_after) if dot)

    def fits(self, pieces: Sequence[bytes], prefix: bytes = b"") -> bool:
        """``prefix`` (fields set in front, such as DKIM-Signature) and the template filled with
        ``pieces`` (literals at even places, values at odd ones) go on the wire as they are."""
        if not self.usable or (prefix and not on_the_wire_as_is(prefix)):
            return False
        values = pieces[1::2]
        # _paired over them all at once: the NUL between two values keeps a CR ending one and an
        # LF starting the next from passing for a CRLF.
        if not _paired(b"\0".join(values)):
            return False
        if any(values[i].startswith(b".") for i in self._starts):
            return False
        return not any(values[i].endswith(b"\n") or (not values[i] and self._line_start[i]) for i in self._dots)
