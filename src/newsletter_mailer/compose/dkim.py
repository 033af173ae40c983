"""DKIM signing (RFC 6376, relaxed/relaxed; RSA-SHA256, and Ed25519-SHA256 from RFC 8463 as an
optional second signature) over the headers mailbox providers check, including both unsubscribe
headers (RFC 8058 requires them signed).

Made for messages filled from one template: the relaxed canonical form of the body's fixed parts
is computed once per issue (``BodyPlan``), and per recipient only the filled values are
canonicalised and hashed between them; the header block is small and canonicalised directly; the
private keys are parsed once. ``DkimSigner.sign`` handles any message. dkimpy is not used here: it
is the reference the tests compare every signature with, byte for byte (tests/compose/test_dkim.py).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from ..config import Settings
from ..errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "SIGNED_HEADERS",
    "BodyPlan",
    "DkimSigner",
    "KeyPair",
    "SigningKey",
    "TemplateSigner",
    "dkim_signer",
    "generate_key",
    "load_key",
    "publish_instructions",
    "relaxed_body",
    "write_key",
]

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
    b"Feedback-ID",  # Gmail reads it only when it is signed
    b"MIME-Version",
    b"Content-Type",
)
# Amazon SES overwrites these two in a raw message and asks senders not to sign them.
NOT_SIGNED_THROUGH_SES = (b"Message-ID", b"Date")
_WSP_RUN = re.compile(rb"[\t ]+")
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_LINE_END = re.compile(rb"\r?\n")
_HEADER_NAME = re.compile(rb"([\x21-\x7e]+?):")


def _relaxed_chunk(data: bytes) -> bytes:
    """Relaxed body canonicalisation of a piece, without the end-of-body rule (RFC 6376 3.4.4):
    whitespace before a line end removed, runs of WSP reduced to one space."""
    if b"\t" not in data and b"  " not in data and b" \r\n" not in data:
        return data
    return _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"\r\n", data))


def _strip_trailing_lines(data: bytes) -> bytes:
    """Empty lines at the end removed, and one line end kept (an empty body stays empty)."""
    end = len(data)
    while data.endswith(b"\r\n", 0, end):
        end -= 2
    if end == len(data):
        return data + b"\r\n" if data else b""
    stripped = data[: end + 2]
    return b"" if stripped == b"\r\n" else stripped


def relaxed_body(body: bytes) -> bytes:
    """The relaxed canonical form of a whole body (CRLF line ends)."""
    return _strip_trailing_lines(_relaxed_chunk(body))


def _relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: name in lower case, value unfolded, WSP runs as one space, stripped."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.lower().rstrip() + b":" + value.strip()


def _parse_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """Header fields as (name, raw value with its line ends), in order."""
    fields: list[list[bytes]] = []
    for line in _LINE_END.split(block):
        if not line:
            break
        if line[0] in (9, 32):
            if fields:
                fields[-1][1] += line + b"\r\n"
            continue
        match = _HEADER_NAME.match(line)
        if match is not None:
            fields.append([match.group(1), line[match.end() :] + b"\r\n"])
        elif not line.startswith(b"From "):
            raise ValueError(f"not a header line: {line[:40]!r}")
    return [(name, value) for name, value in fields]


def _select(fields: list[tuple[bytes, bytes]], include: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
    """The fields to sign, in the order of h=: for each name the last occurrence (RFC 6376 5.4.2)."""
    last = {name.lower(): (name, value) for name, value in fields}  # a later field replaces an earlier one
    return [last[wanted] for wanted in include if wanted in last]


def _fold(value: bytes, namelen: int) -> bytes:
    """Fold a tag list at column 72 exactly as dkimpy does, so the output matches it byte for byte."""
    maxleng = 72 - namelen
    if len(value) <= maxleng:
        return value
    if len(value) - value.rfind(b"\r\n") == 2 and len(value) <= maxleng + 2:
        return value
    i = value.rfind(b"\r\n ")
    pre = b""
    if i != -1:
        pre, value = value[: i + 3], value[i + 3 :]
    while len(value) > maxleng:
        i = value[:maxleng].rfind(b" ")
        if i == -1:
            pre += value[:maxleng] + b"\r\n "
            value = value[maxleng:]
        else:
            pre += value[:i] + b"\r\n "
            value = value[i + 1 :]
        maxleng = 71
    return pre + value


@dataclass(frozen=True)
class SigningKey:
    """A parsed private key with its selector and domain."""

    selector: bytes
    domain: bytes
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else b"ed25519-sha256"

    def sign_digest(self, digest: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the header hash input


class BodyPlan:
    """The body of a template as fixed literals with values between them, canonicalised once.

    Relaxed canonicalisation works on lines, so a piece can be canonicalised on its own only
    where its edges cannot join a whitespace run or a line end of its neighbour. The plan
    checks that once for the literals: each literal before a value ends in a byte that is not
    WSP or CR, each literal after one starts with a byte that is not WSP, CR or LF, and the last
    literal holds a non-empty line (so the end-of-body rule stays inside it). Each value is
    checked when filled (line ends only as QP soft breaks). Where either fails, the caller
    signs the whole message instead.
    """

    def __init__(self, literals: Sequence[bytes]) -> None:
        *middle, last = (_relaxed_chunk(lit) for lit in literals)
        self.fixed = (*middle, _strip_trailing_lines(last))
        self.usable = self._fits(literals)

    def _fits(self, literals: Sequence[bytes]) -> bool:
        if any(lit.count(b"\n") != lit.count(b"\r") or lit.count(b"\n") != lit.count(b"\r\n") for lit in literals):
            return False
        for before, after in itertools.pairwise(literals):
            if not before or not after or before[-1] in b" \t\r" or after[0] in b" \t\r\n":
                return False
        last = literals[-1]
        return bool(last) and bool(_relaxed_chunk(last).rstrip(b"\r\n"))

    def digest(self, values: Sequence[bytes]) -> bytes | None:
        """SHA-256 of the canonical body with these values, or None if a value does not fit."""
        hasher = hashlib.sha256(self.fixed[0])
        update = hasher.update
        for value, fixed in zip(values, self.fixed[1:], strict=True):
            if b"\r" in value or b"\n" in value:
                soft = value.count(b"=\r\n")
                if value.count(b"\r") != soft or value.count(b"\n") != soft:
                    return None
            update(_relaxed_chunk(value))
            update(fixed)
        return hasher.digest()


class DkimSigner:
    """Signs messages with one or two keys (RSA first, then an optional Ed25519)."""

    def __init__(self, keys: Sequence[SigningKey], headers: Sequence[bytes] = SIGNED_HEADERS) -> None:
        self.keys = tuple(keys)
        self.include = tuple(name.lower() for name in headers)
        # Most signed fields (From, Reply-To, List-Id, Content-Type...) are the same in every
        # message of an issue: each one's canonical form is worked out once.
        self._canonical: dict[tuple[bytes, bytes], bytes] = {}

    def _canonical_line(self, name: bytes, value: bytes) -> bytes:
        line = self._canonical.get((name, value))
        if line is None:
            if len(self._canonical) >= 256:  # per-recipient fields would grow it without end
                self._canonical.clear()
            line = self._canonical[name, value] = _relaxed_header(name, value) + b"\r\n"
        return line

    def sign(self, message: bytes, now: int | None = None) -> bytes:
        """Any message: the DKIM-Signature fields followed by the message."""
        lines = _LINE_END.split(message)
        end = lines.index(b"") if b"" in lines else len(lines)
        header_block = b"\r\n".join(lines[:end]) + b"\r\n"
        body = b"\r\n".join(lines[end + 1 :])
        digest = hashlib.sha256(relaxed_body(body)).digest()
        return self.signatures(header_block, digest, now) + message

    def signatures(self, header_block: bytes, body_digest: bytes, now: int | None = None) -> bytes:
        """The DKIM-Signature fields for a header block and the SHA-256 of its canonical body."""
        selected = _select(_parse_headers(header_block), self.include)
        canonical = b"".join([self._canonical_line(name, value) for name, value in selected])
        stamp = str(int(time.time()) if now is None else now).encode("ascii")
        bh = base64.b64encode(body_digest)
        return b"".join(self._one(key, canonical, stamp, bh) for key in self.keys)

    def _one(self, key: SigningKey, canonical: bytes, stamp: bytes, bh: bytes) -> bytes:
        # The tags in dkimpy's order, so the two can be compared byte for byte.
        tags = (
            b"v=1; a=" + key.algorithm + b"; c=relaxed/relaxed; d=" + key.domain + b"; i=@" + key.domain
            + b"; q=dns/txt; s=" + key.selector + b"; t=" + stamp + b"; h=" + b" : ".join(self.include)
            + b"; bh=" + bh + b"; b="
        )  # fmt: skip
        # As dkimpy: fold with a placeholder b= value, then drop the placeholder (no b= follows it).
        folded = _fold(tags + b"0" * 60, len(b"DKIM-Signature"))
        unsigned = folded[: folded.rindex(b"b=") + 2]
        own = _relaxed_header(b"DKIM-Signature", b" " + unsigned)
        signed = canonical + own.rstrip()
        signature = base64.b64encode(key.sign_digest(hashlib.sha256(signed).digest()))
        return b"DKIM-Signature: " + _fold(tags + signature + b"\r\n", len(b"DKIM-Signature"))


class TemplateSigner:
    """Signs the messages filled from one template (``literals`` with a value between each two).

    The header block is found in the literals once; per message the header values are checked
    to hold line ends only as folds (so the header block ends where it does in the template)
    and the body is hashed through a ``BodyPlan``. Anything that does not fit is signed as a
    whole message. The first message is signed both ways and compared, so a template this
    reasoning does not cover falls back rather than sign wrongly.
    """

    def __init__(self, signer: DkimSigner, literals: Sequence[bytes]) -> None:
        self.signer = signer
        self._checked = False
        split = next((i for i, lit in enumerate(literals) if b"\r\n\r\n" in lit), None)
        self._split = -1
        if split is None or any(lit[-1:] in (b"", b"\r", b"\n") for lit in literals[:split]):
            return
        end = literals[split].index(b"\r\n\r\n") + 4
        self._head_tail = literals[split][:end]
        self._plan = BodyPlan([literals[split][end:], *literals[split + 1 :]])
        if self._plan.usable:
            self._split = 2 * split  # the index of that literal in a filled list of pieces

    @property
    def fast(self) -> bool:
        """Messages are signed from their pieces (False: each is canonicalised whole)."""
        return self._split >= 0

    def sign(self, pieces: Sequence[bytes], message: bytes) -> bytes:
        """``message`` (``b"".join(pieces)``) with its DKIM-Signature fields in front."""
        now = int(time.time())
        signed = self._sign_pieces(pieces, message, now)
        if signed is None:
            return self.signer.sign(message, now)
        if not self._checked:
            self._checked = True
            if signed != self.signer.sign(message, now):
                self._split = -1
                return self.signer.sign(message, now)
        return signed

    def _sign_pieces(self, pieces: Sequence[bytes], message: bytes, now: int) -> bytes | None:
        split = self._split
        if split < 0:
            return None
        for value in pieces[1:split:2]:
            if (b"\r" in value or b"\n" in value) and re.search(
                rb"[\r\n]", value.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
            ):
                return None
        digest = self._plan.digest(pieces[split + 1 :: 2])
        if digest is None:
            return None
        header_block = b"".join(pieces[:split]) + self._head_tail
        return self.signer.signatures(header_block, digest, now) + message


def load_key(settings: Settings, ed25519: bool = False) -> bytes:
    """The PEM private key from the environment or the key file (the Ed25519 one if asked)."""
    config = settings.dkim
    inline, file = (config.ed25519_key, config.ed25519_key_file) if ed25519 else (config.key, config.key_file)
    if inline:
        return inline
    path = settings.path(file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the DKIM private key: {exc.strerror}", file=path) from None
    if b"PRIVATE KEY" not in key:
        raise ConfigError("the DKIM key file does not hold a PEM private key", file=path)
    return key


def parse_key(pem: bytes, selector: str, domain: str) -> SigningKey:
    """A PEM private key (RSA, PKCS#1 or PKCS#8; or Ed25519, PKCS#8); ValueError if it is neither."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else "not a private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ValueError(f"an RSA key of {key.key_size} bits is too short (at least 1024, 2048 advised)")
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("the key is neither RSA nor Ed25519")
    return SigningKey(selector.encode("ascii"), domain.encode("ascii"), key)


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The signer for the workspace's keys (RSA, then Ed25519 if set), or None when DKIM is off."""
    config = settings.dkim
    if not config.enabled:
        return None
    keys = [_checked_key(settings, load_key(settings), config.selector, config.key_file, rsa.RSAPrivateKey)]
    if config.ed25519_enabled:
        pem = load_key(settings, ed25519=True)
        file = config.ed25519_key_file
        keys.append(_checked_key(settings, pem, config.ed25519_selector, file, ed25519.Ed25519PrivateKey))
    if settings.transport.kind == "ses":
        return DkimSigner(keys, [h for h in SIGNED_HEADERS if h not in NOT_SIGNED_THROUGH_SES])
    return DkimSigner(keys)


def _checked_key(settings: Settings, pem: bytes, selector: str, file: str, kind: type) -> SigningKey:
    try:
        key = parse_key(pem, selector, settings.dkim.domain)
        if not isinstance(key.key, kind):
            raise ValueError(f"expected an {'RSA' if kind is rsa.RSAPrivateKey else 'Ed25519'} key")
        DkimSigner([key]).sign(b"From: a@example.org\r\nSubject: probe\r\n\r\nprobe\r\n")
    except ValueError as exc:
        raise ConfigError(f"the DKIM key cannot sign: {exc}", file=settings.path(file or ".")) from None
    return key


TXT_STRING_MAX = 255  # octets in one character-string of a TXT record (RFC 1035 3.3)
ALGORITHMS = ("rsa", "ed25519")


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    dns_name: str
    dns_value: str

    def txt_strings(self) -> list[str]:
        """The record's value as the character-strings of one TXT record: DNS holds at most 255
        octets in each, and a DKIM verifier joins them without a separator (RFC 6376 3.6.2.2)."""
        value = self.dns_value
        return [value[i : i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)]

    def bind_record(self) -> str:
        """The record as a zone file writes it: the strings in parentheses, one a line."""
        strings = [f'"{part}"' for part in self.txt_strings()]
        return f"{self.dns_name}. IN TXT ( " + "\n    ".join(strings) + " )"


def generate_key(selector: str, domain: str, bits: int = 2048, algorithm: str = "rsa") -> KeyPair:
    """A key pair and the TXT record that publishes its public half: RSA (``p=`` the
    SubjectPublicKeyInfo), or Ed25519 as RFC 8463 says (``k=ed25519``, ``p=`` the raw 32-byte key)."""
    name = f"{selector}._domainkey.{domain}"
    if algorithm == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        ed_private = ed_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return KeyPair(ed_private, name, f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    return KeyPair(private, name, value)


def publish_instructions(pair: KeyPair, selector: str, key_file: str, algorithm: str) -> str:
    """What to put in DNS (as a zone file writes it, and as one value for panels that split it
    themselves) and in newsletter.toml for a key ``keygen`` made."""
    domain = pair.dns_name.split("._domainkey.", 1)[1]
    prefix = "ed25519_" if algorithm == "ed25519" else ""
    settings = f'[dkim]\ndomain = "{domain}"\n{prefix}selector = "{selector}"\n{prefix}key_file = "{key_file}"'
    if algorithm == "ed25519":
        settings += (
            "\n\n(an Ed25519 signature goes beside the RSA one, which [dkim] selector and key_file "
            "name: receivers that do not know Ed25519 check the RSA one)"
        )
    return (
        "Publish this TXT record in DNS. In a zone file (BIND), as strings of at most "
        f"{TXT_STRING_MAX} characters:\n\n{pair.bind_record()}\n\n"
        f"In a DNS panel that takes one value (it splits it itself): name {selector}._domainkey "
        f"(in the zone of {domain}), type TXT, value:\n\n{pair.dns_value}\n\n"
        f"Then add to newsletter.toml:\n\n{settings}"
    )


def write_key(pair: KeyPair, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # 0700 when it creates .newsletter/
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
