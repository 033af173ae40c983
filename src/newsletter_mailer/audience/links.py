"""Signed per-recipient unsubscribe tokens and the URLs that carry them.

A token names a recipient and a list without showing the address: the version byte, then the
address sealed with AES-SIV (RFC 5297, ``cryptography``'s AESSIV) under a 512-bit key derived
from the workspace secret with HKDF-SHA256, with the version byte and the list id as associated
data. SIV is deterministic, so a recipient's link is the same in every issue, and misuse-
resistant: the synthetic IV is the tag. Altered, truncated, foreign-key and other-list tokens
are refused.

A ``[TEST]`` copy carries test tokens: a different version byte, which the tag covers, so a real
token cannot be turned into a test one (or back) without the key. ``verify`` refuses test tokens;
only ``read`` accepts them, for pages that show what would happen and change nothing.

Links sent before AES-SIV (versions 1 and 2: an HMAC-SHA256 keystream under a synthetic IV, the
whole authenticated with HMAC-SHA256) are still read, with the keys they were made with; no new
token is made that way. tests/audience/token_vectors/ holds tokens of that version as made then.
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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import Settings
from ..errors import TokenError
from ..workspace import private_dir

__all__ = [
    "SECRET_ENV",
    "TEST_VERSION",
    "VERSION",
    "TokenSigner",
    "TokenSubject",
    "load_secret",
    "preferences_url_for",
    "signer_for",
    "unsubscribe_url",
]

VERSION = b"\x03"  # AES-SIV
TEST_VERSION = b"\x04"
LEGACY_VERSION = b"\x01"  # HMAC-SIV, read only
LEGACY_TEST_VERSION = b"\x02"
SIV_BYTES = 16
IV_BYTES = 12  # of the legacy tokens
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
        # One AES-SIV key schedule for the signer's life: a token is made for every recipient.
        key = HKDF(hashes.SHA256(), 64, salt=None, info=b"newsletter-mailer/token/aes-siv").derive(self.secret)
        object.__setattr__(self, "_siv", AESSIV(key))
        object.__setattr__(self, "_list_id", self.list_id.encode("utf-8"))
        # The legacy keys, as keyed HMAC states copied per use, only to read version 1 and 2 links.
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
        version = TEST_VERSION if self.test else VERSION
        siv: AESSIV = self._siv  # type: ignore[attr-defined]
        return _b64(version + siv.encrypt(address.encode("utf-8"), [version, self._list_id]))  # type: ignore[attr-defined]

    def read(self, token: str) -> TokenSubject:
        """Whom a real or test token names; TokenError if this key did not make it for this list."""
        raw = _unb64(token)
        version = raw[:1]
        if version in (VERSION, TEST_VERSION):
            plain = self._open_siv(version, raw[1:])
        elif version in (LEGACY_VERSION, LEGACY_TEST_VERSION):
            plain = self._open_legacy(version, raw[1:])
        else:
            raise TokenError("token is malformed")
        try:
            address = plain.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError("token is malformed") from None
        return TokenSubject(address, test=version in (TEST_VERSION, LEGACY_TEST_VERSION))

    def _open_siv(self, version: bytes, sealed: bytes) -> bytes:
        if len(sealed) < SIV_BYTES + 1:
            raise TokenError("token is malformed")
        siv: AESSIV = self._siv  # type: ignore[attr-defined]
        try:
            return siv.decrypt(sealed, [version, self._list_id])  # type: ignore[attr-defined]
        except InvalidTag:
            raise TokenError("token signature does not match") from None

    def _open_legacy(self, version: bytes, sealed: bytes) -> bytes:
        """A link sent before AES-SIV: HMAC-SHA256 tag over version, list, IV and ciphertext."""
        if len(sealed) < IV_BYTES + 1 + TAG_BYTES:
            raise TokenError("token is malformed")
        iv, cipher, tag = sealed[:IV_BYTES], sealed[IV_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(version, iv, cipher)):
            raise TokenError("token signature does not match")
        return _xor(cipher, self._keystream(iv, len(cipher)))

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


def preferences_url_for(unsubscribe: str) -> str:
    """The preferences page of the reader an unsubscribe URL names: the same token, so the page
    is reached by the link the reader already has ("" for "": a page with no reader)."""
    base, sep, token = unsubscribe.rpartition("/unsubscribe/")
    return f"{base}/preferences/{token}" if sep else ""


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
