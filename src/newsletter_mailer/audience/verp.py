"""VERP envelope senders: ``bounces+TOKEN@domain``, one per journal row, so a delivery report
names the recipient and the issue it bounced from even when its own text does not.

The token is the row's number and an 80-bit HMAC over it, keyed by the workspace secret like
the unsubscribe links: it reveals no address, cannot be forged to suppress someone else, and
stays short (about 20 characters) because RFC 5321 caps a local part at 64 octets, which a
token carrying the address itself would exceed. Lower-case base32 survives systems that fold
the case of a return path.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass

from ..errors import TokenError
from .links import TokenSigner

__all__ = ["MAC_BYTES", "VerpCodec"]

MAC_BYTES = 10


@dataclass(frozen=True)
class VerpCodec:
    """Makes and reads the VERP senders of one list with one bounce address."""

    secret: bytes
    list_id: str
    address: str  # the plain bounce address, e.g. bounces@news.example.org

    @classmethod
    def from_signer(cls, signer: TokenSigner, address: str) -> VerpCodec:
        return cls(signer.secret, signer.list_id, address)

    @property
    def local(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def _mac(self, number: int) -> bytes:
        message = b"verp\x00" + self.list_id.encode("utf-8") + b"\x00" + str(number).encode("ascii")
        return hmac.digest(self.secret, message, "sha256")[:MAC_BYTES]

    def token(self, row: int) -> str:
        raw = row.to_bytes(max(1, (row.bit_length() + 7) // 8), "big") + self._mac(row)
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def sender(self, row: int) -> str:
        return f"{self.local}+{self.token(row)}@{self.domain}"

    def row(self, token: str) -> int:
        """The journal row a token names; TokenError if this key did not make it."""
        text = token.strip().upper()
        try:
            raw = base64.b32decode(text + "=" * (-len(text) % 8))
        except (binascii.Error, ValueError):
            raise TokenError("bounce token is not valid base32") from None
        if len(raw) <= MAC_BYTES:
            raise TokenError("bounce token is malformed")
        number = int.from_bytes(raw[:-MAC_BYTES], "big")
        if not hmac.compare_digest(raw[-MAC_BYTES:], self._mac(number)):
            raise TokenError("bounce token signature does not match")
        return number

    def find(self, text: str) -> list[int]:
        """Every row named by a valid ``local+TOKEN@domain`` in the text, first seen first."""
        pattern = re.compile(rf"{re.escape(self.local)}\+([a-z2-7]{{8,40}})@{re.escape(self.domain)}", re.IGNORECASE)
        rows: list[int] = []
        for match in pattern.finditer(text):
            try:
                number = self.row(match.group(1))
            except TokenError:
                continue  # forged or from another workspace: ignore, fall back to the report
            if number not in rows:
                rows.append(number)
        return rows
