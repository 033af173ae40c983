"""Signed per-recipient unsubscribe tokens and the URLs that carry them.

A token names a recipient and a list without showing the address: the address is encrypted
with an HMAC-SHA256 keystream under a synthetic IV (deterministic, so a recipient's link is the
same in every issue), and the whole token is authenticated with HMAC-SHA256 over the list id.
Altered, truncated, foreign-key and other-list tokens are refused; tags are compared in
constant time.

A ``[TEST]`` copy carries test tokens: a different version byte, which the tag covers, so a real
token cannot be turned into a test one (or back) without the key. ``verify`` refuses test tokens;
only ``read`` accepts them, for pages that show what would happen and change nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import TokenError
from ..workspace import private_dir

VERSION = b"\x01"
TEST_VERSION = b"\x02"
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


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _prf(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


@dataclass(frozen=True)
class TokenSubject:
    """Whom a verified token names, and whether it came from a test copy."""

    address: str
    test: bool


@dataclass(frozen=True)
class TokenSigner:
    """Makes and checks unsubscribe tokens for one list; ``test=True`` makes a test copy's tokens."""

    secret: bytes
    list_id: str
    test: bool = False

    def __post_init__(self) -> None:
        # Keyed HMAC states, copied per use: a token is made for every recipient of every send.
        enc = hmac.new(_prf(self.secret, b"newsletter-mailer/enc"), digestmod=hashlib.sha256)
        mac = hmac.new(_prf(self.secret, b"newsletter-mailer/mac"), digestmod=hashlib.sha256)
        object.__setattr__(self, "_enc", enc)
        object.__setattr__(self, "_mac", mac)
        object.__setattr__(self, "_list", self.list_id.encode("utf-8") + b"\x00")

    def message_id_key(self) -> bytes:
        """A key for Message-IDs, apart from the token keys: without the secret nobody can tell
        from a Message-ID which address it was sent to."""
        return _prf(self.secret, b"newsletter-mailer/message-id")

    def _prf(self, keyed: hmac.HMAC, message: bytes) -> bytes:
        state = keyed.copy()
        state.update(message)
        return state.digest()

    def _keystream(self, iv: bytes, length: int) -> bytes:
        enc: hmac.HMAC = self._enc  # type: ignore[attr-defined]
        blocks = [self._prf(enc, iv + i.to_bytes(4, "big")) for i in range((length + 31) // 32)]
        return b"".join(blocks)[:length]

    def _tag(self, version: bytes, iv: bytes, cipher: bytes) -> bytes:
        return self._prf(self._mac, b"tag" + version + self._list + iv + cipher)[:TAG_BYTES]  # type: ignore[attr-defined]

    def token(self, address: str) -> str:
        plain = address.encode("utf-8")
        version = TEST_VERSION if self.test else VERSION
        iv = self._prf(self._mac, b"iv" + self._list + plain)[:IV_BYTES]  # type: ignore[attr-defined]
        cipher = _xor(plain, self._keystream(iv, len(plain)))
        return _b64(version + iv + cipher + self._tag(version, iv, cipher))

    def read(self, token: str) -> TokenSubject:
        """Whom a real or test token names; TokenError if this key did not make it for this list."""
        raw = _unb64(token)
        version = raw[:1]
        if len(raw) < 1 + IV_BYTES + 1 + TAG_BYTES or version not in (VERSION, TEST_VERSION):
            raise TokenError("token is malformed")
        iv, cipher, tag = raw[1 : 1 + IV_BYTES], raw[1 + IV_BYTES : -TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(version, iv, cipher)):
            raise TokenError("token signature does not match")
        plain = _xor(cipher, self._keystream(iv, len(cipher)))
        try:
            return TokenSubject(plain.decode("utf-8"), test=version == TEST_VERSION)
        except UnicodeDecodeError:
            raise TokenError("token is malformed") from None

    def verify(self, token: str) -> str:
        """The address a real token names; TokenError for a test copy's token or a forgery."""
        subject = self.read(token)
        if subject.test:
            raise TokenError("a test copy's token changes nothing")
        return subject.address

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
    private_dir(state_dir)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def signer_for(settings: Settings, *, test: bool = False) -> TokenSigner:
    """The workspace's signer: its secret, its list; ``test`` for a [TEST] copy's links."""
    return TokenSigner(load_secret(settings.state_dir), settings.newsletter.list_id_value, test)
