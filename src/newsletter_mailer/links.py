"""Signed per-recipient unsubscribe tokens and the URLs that carry them.

A token names a recipient and a list without showing the address: the address is encrypted
with an HMAC-SHA256 keystream under a synthetic IV (deterministic, so a recipient's link is the
same in every issue), and the whole token is authenticated with HMAC-SHA256 over the list id.
Altered, truncated, foreign-key and other-list tokens are refused; tags are compared in
constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import TokenError

VERSION = b"\x01"
IV_BYTES = 12
TAG_BYTES = 16
SECRET_ENV = "NEWSLETTER_SECRET"
SECRET_FILE = "secret.key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenError("token is not valid base64url") from None


def _prf(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


@dataclass(frozen=True)
class TokenSigner:
    """Makes and checks unsubscribe tokens for one list."""

    secret: bytes
    list_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_enc", _prf(self.secret, b"newsletter-mailer/enc"))
        object.__setattr__(self, "_mac", _prf(self.secret, b"newsletter-mailer/mac"))
        object.__setattr__(self, "_list", self.list_id.encode("utf-8") + b"\x00")

    def _keystream(self, iv: bytes, length: int) -> bytes:
        enc: bytes = self._enc  # type: ignore[attr-defined]
        blocks = [_prf(enc, iv + i.to_bytes(4, "big")) for i in range((length + 31) // 32)]
        return b"".join(blocks)[:length]

    def token(self, address: str) -> str:
        mac: bytes = self._mac  # type: ignore[attr-defined]
        lst: bytes = self._list  # type: ignore[attr-defined]
        plain = address.encode("utf-8")
        iv = _prf(mac, b"iv" + lst + plain)[:IV_BYTES]
        stream = self._keystream(iv, len(plain))
        cipher = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
        tag = _prf(mac, b"tag" + VERSION + lst + iv + cipher)[:TAG_BYTES]
        return _b64(VERSION + iv + cipher + tag)

    def verify(self, token: str) -> str:
        """The address a token names; TokenError if it was not made by this key for this list."""
        raw = _unb64(token)
        if len(raw) < 1 + IV_BYTES + 1 + TAG_BYTES or raw[:1] != VERSION:
            raise TokenError("token is malformed")
        mac: bytes = self._mac  # type: ignore[attr-defined]
        lst: bytes = self._list  # type: ignore[attr-defined]
        iv, cipher, tag = raw[1:1 + IV_BYTES], raw[1 + IV_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        expected = _prf(mac, b"tag" + VERSION + lst + iv + cipher)[:TAG_BYTES]
        if not hmac.compare_digest(tag, expected):
            raise TokenError("token signature does not match")
        plain = bytes(a ^ b for a, b in zip(cipher, self._keystream(iv, len(cipher)), strict=True))
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError("token is malformed") from None

    def unsubscribe_url(self, base_url: str, address: str) -> str:
        return unsubscribe_url(base_url, self.token(address))


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def load_secret(state_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    """NEWSLETTER_SECRET, or a key generated once and kept in the workspace with mode 0600."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV].encode("utf-8")
    path = state_dir / SECRET_FILE
    if path.is_file():
        return path.read_bytes().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
