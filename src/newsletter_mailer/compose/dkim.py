"""DKIM signing with dkimpy: relaxed/relaxed, over the headers mailbox providers check,
including both unsubscribe headers (RFC 8058 requires them signed). Each recipient's message is
signed after its values are filled in.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from ..config import Settings
from ..errors import ConfigError


def _openssl_rsa_sign(hash_object: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's RSASSA-PKCS1-v1_5 signing step done by OpenSSL: the same signature, but ~0.5 ms
    instead of ~6 ms of pure-Python modular exponentiation per message."""
    key = _openssl_key(tuple(private_key[k] for k in _KEY_FIELDS))
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[hash_object.name]
    signature: bytes = key.sign(hash_object.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    return signature


_KEY_FIELDS = (
    "prime1",
    "prime2",
    "privateExponent",
    "exponent1",
    "exponent2",
    "coefficient",
    "publicExponent",
    "modulus",
)


@functools.lru_cache(maxsize=8)
def _openssl_key(values: tuple[int, ...]) -> rsa.RSAPrivateKey:
    p, q, d, dmp1, dmq1, iqmp, e, n = values
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)).private_key()


dkimpy.RSASSA_PKCS1_v1_5_sign = _openssl_rsa_sign


SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
)


def load_key(settings: Settings) -> bytes:
    config = settings.dkim
    if config.key:
        return config.key
    path = settings.path(config.key_file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the DKIM private key: {exc.strerror}", file=path) from None
    if b"PRIVATE KEY" not in key:
        raise ConfigError("the DKIM key file does not hold a PEM private key", file=path)
    return key


def dkim_signer(settings: Settings) -> Callable[[bytes], bytes] | None:
    """A function that prepends a DKIM-Signature to a message, or None when DKIM is off."""
    config = settings.dkim
    if not config.enabled:
        return None
    key = load_key(settings)
    selector, domain = config.selector.encode("ascii"), config.domain.encode("ascii")

    def sign(message: bytes) -> bytes:
        signature: bytes = dkimpy.sign(
            message, selector, domain, key, canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS)
        )
        return signature + message

    try:
        sign(b"From: a@example.org\r\nSubject: probe\r\n\r\nprobe\r\n")
    except dkimpy.DKIMException as exc:
        raise ConfigError(
            f"the DKIM key cannot sign: {exc}",
            file=settings.path(config.key_file or "."),
        ) from None
    return sign


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    dns_name: str
    dns_value: str


def generate_key(selector: str, domain: str, bits: int = 2048) -> KeyPair:
    """An RSA key pair and the TXT record that publishes its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    return KeyPair(private, f"{selector}._domainkey.{domain}", value)


def write_key(pair: KeyPair, path: Path) -> None:
    import os

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # 0700 when it creates .newsletter/
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
