"""AWS Signature Version 4 for the few requests the SES transport makes, checked against AWS's
published SigV4 test suite (tests/send/test_providers.py).

A small implementation rather than botocore's signer: botocore is some 80 MB of service models
installed for the forty lines this needs, and our requests are simple (one host, a JSON body,
no presigning, no chunked uploads).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Credentials", "canonical_request", "sign"]

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def canonical_request(method: str, url: str, headers: Mapping[str, str], payload_hash: str) -> tuple[str, str]:
    """(the canonical request, the signed header names) for a request (headers include host)."""
    parts = urllib.parse.urlsplit(url)
    path = _quote(urllib.parse.unquote(parts.path or "/"), safe="-_.~/")
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs))
    canonical = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = ";".join(sorted(canonical))
    lines = "".join(f"{name}:{canonical[name]}\n" for name in sorted(canonical))
    return f"{method}\n{path}\n{query}\n{lines}\n{names}\n{payload_hash}", names


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
) -> dict[str, str]:
    """``headers`` plus x-amz-date (and the session token) and the Authorization header.
    ``amz_date`` is ``YYYYMMDDTHHMMSSZ``; ``headers`` must hold Host."""
    signed = {**headers, "x-amz-date": amz_date}
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    payload_hash = hashlib.sha256(body).hexdigest()
    request, names = canonical_request(method, url, signed, payload_hash)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(_key(credentials.secret_key, amz_date[:8], region, service), to_sign.encode(), hashlib.sha256)
    authorization = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, "
        f"Signature={signature.hexdigest()}"
    )
    return {**signed, "Authorization": authorization}
