"""``POST /webhooks/<provider>``: sending providers' bounce and complaint events, checked as each
provider documents and recorded in the bounce log exactly like a report read by ``newsletter
bounces`` (one record per event, the same suppression thresholds, shown by ``status``).

A request is believed only once its signature or secret checks out: Amazon SNS (SES) by the RSA
signature of the message against the signing certificate, fetched only from
``sns.<region>.amazonaws.com`` over HTTPS (or ``[webhooks] sns_trusted_origin``) and only for a
configured topic; Mailgun by HMAC-SHA256 of timestamp and token; SendGrid by ECDSA P-256 over
timestamp and body; Postmark and Brevo by the credentials of the webhook URL (HTTP basic
authentication, or Brevo's bearer token). Anything else gets 401 and changes nothing. Secrets
come from the environment and never reach a log line or a reply.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app.webhooks import record_events
from ..audience.webhook_events import PARSERS, WebhookEvent, parse_events, ses_events
from ..config import Settings, WebhookSettings
from ..errors import WebhookError
from .bodies import bounded_body

__all__ = [
    "MAX_BODY",
    "SnsVerifier",
    "check_basic",
    "check_mailgun",
    "check_sendgrid",
    "sns_string_to_sign",
    "webhook_routes",
]

log = logging.getLogger("newsletter_mailer.web")
MAX_BODY = 1024 * 1024  # SendGrid's batches stay well under this; Postmark's bounce with content too
PROVIDERS = ("ses", *PARSERS)
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]{1,40}\.amazonaws\.com(\.cn)?$")
_SNS_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_SNS_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """What SNS signs: each present field of the message's type as ``name\\nvalue\\n``, in order."""
    keys = _SNS_KEYS.get(str(message.get("Type")))
    if keys is None:
        raise WebhookError("not an SNS message of a known Type")
    parts = []
    for key in keys:
        value = message.get(key)
        if key == "Subject" and value is None:
            continue
        if not isinstance(value, str):
            raise WebhookError(f"the SNS message has no {key}")
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode("utf-8")


class SnsVerifier:
    """Checks SNS messages; signing certificates are fetched once per URL from trusted URLs only."""

    def __init__(self, settings: WebhookSettings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self.fetched: list[str] = []  # certificate URLs fetched, for the log and the tests

    def trusted(self, url: object) -> bool:
        """An https URL on sns.<region>.amazonaws.com, or under the configured trusted origin."""
        if not isinstance(url, str) or len(url) > 2048:
            return False
        origin = self.settings.sns_trusted_origin.rstrip("/")
        if origin and url.startswith(origin + "/"):
            return True
        parts = urllib.parse.urlsplit(url)
        return parts.scheme == "https" and bool(_SNS_HOST.match(parts.hostname or "")) and parts.port is None

    async def verify(self, message: Mapping[str, Any]) -> None:
        if message.get("TopicArn") not in self.settings.sns_topic_arns:
            raise WebhookError("the SNS message is from a topic not in [webhooks] sns_topic_arns")
        algorithm = _SNS_HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise WebhookError("the SNS message has no known SignatureVersion (1 or 2)")
        url = message.get("SigningCertURL")
        if not self.trusted(url):
            raise WebhookError("the SNS message's SigningCertURL is not an Amazon SNS URL")
        try:
            signature = base64.b64decode(str(message.get("Signature")), validate=True)
        except binascii.Error:
            raise WebhookError("the SNS message's Signature is not base64") from None
        key = await self._key(str(url))
        try:
            key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise WebhookError("the SNS message's signature does not match") from None

    async def _key(self, url: str) -> rsa.RSAPublicKey:
        if url not in self._keys:
            self.fetched.append(url)
            try:
                async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                    reply = await client.get(url)
                reply.raise_for_status()
                key = x509.load_pem_x509_certificate(reply.content).public_key()
            except (httpx.HTTPError, ValueError) as exc:
                raise WebhookError(f"the SNS signing certificate could not be fetched: {type(exc).__name__}") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise WebhookError("the SNS signing certificate holds no RSA key")
            self._keys = {**dict(list(self._keys.items())[-15:]), url: key}
        return self._keys[url]

    async def confirm(self, message: Mapping[str, Any]) -> None:
        """Confirm a verified subscription by visiting its SubscribeURL, if it is SNS's own."""
        url = message.get("SubscribeURL")
        if not self.trusted(url):
            log.warning(
                "SNS subscription for %s not confirmed: its SubscribeURL is not Amazon's", message.get("TopicArn")
            )
            return
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                (await client.get(str(url))).raise_for_status()
        except httpx.HTTPError as exc:
            raise WebhookError(
                f"the SNS subscription could not be confirmed: {type(exc).__name__}", status=502
            ) from None
        log.info("SNS subscription to %s confirmed", message.get("TopicArn"))


def _same(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode("utf-8"))


def check_basic(authorization: str, secret: str, *, bearer: bool = False) -> None:
    """HTTP basic credentials ``user:password`` equal to ``secret`` (or, with ``bearer``, a bearer
    token equal to it); WebhookError otherwise."""
    if not secret:
        raise WebhookError("this provider's webhook secret is not set in the environment")
    scheme, _, value = authorization.strip().partition(" ")
    given = ""
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    elif bearer and scheme.lower() == "bearer":
        given = value.strip()
    if not given or not _same(given, secret):
        raise WebhookError("the webhook's credentials are missing or wrong")


def _fresh(timestamp: object, max_age: float, now: float) -> str:
    text = str(timestamp) if isinstance(timestamp, str | int) else ""
    if not text.isdigit() or abs(now - int(text)) > max_age:
        raise WebhookError("the signed timestamp is missing or outside the replay window")
    return text


def check_mailgun(payload: object, key: str, max_age: float, now: float) -> None:
    """Mailgun: hex HMAC-SHA256 under the webhook signing key of timestamp + token."""
    if not key:
        raise WebhookError("NEWSLETTER_WEBHOOKS_MAILGUN_SIGNING_KEY is not set")
    signed = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signed, dict):
        raise WebhookError("the Mailgun payload has no signature")
    timestamp = _fresh(signed.get("timestamp"), max_age, now)
    token, signature = signed.get("token"), signed.get("signature")
    if not isinstance(token, str) or not isinstance(signature, str):
        raise WebhookError("the Mailgun signature is incomplete")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not _same(signature.lower(), expected):
        raise WebhookError("the Mailgun signature does not match")


def check_sendgrid(headers: Mapping[str, str], body: bytes, public_key: str, max_age: float, now: float) -> None:
    """SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key, validate=True))
    except (binascii.Error, ValueError):
        raise WebhookError("[webhooks] sendgrid_public_key is not set or not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookError("[webhooks] sendgrid_public_key is not a P-256 key")
    timestamp = _fresh(headers.get("x-twilio-email-event-webhook-timestamp", ""), max_age, now)
    try:
        signature = base64.b64decode(headers.get("x-twilio-email-event-webhook-signature", ""), validate=True)
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        raise WebhookError("the SendGrid signature is missing or does not match") from None


class _Receiver:
    """The checks of each provider, then the events of the verified body."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sns = SnsVerifier(settings.webhooks)

    async def events(self, provider: str, request: Request, body: bytes) -> list[WebhookEvent]:
        w = self.settings.webhooks
        headers = {k.lower(): v for k, v in request.headers.items()}
        if provider == "ses":
            return await self.ses(body)
        if provider == "mailgun":
            check_mailgun(_json(body), w.mailgun_signing_key, w.max_age, time.time())
        elif provider == "sendgrid":
            check_sendgrid(headers, body, w.sendgrid_public_key, w.max_age, time.time())
        elif provider == "postmark":
            check_basic(headers.get("authorization", ""), w.postmark_secret)
        else:
            check_basic(headers.get("authorization", ""), w.brevo_secret, bearer=True)
        return parse_events(provider, body)

    async def ses(self, body: bytes) -> list[WebhookEvent]:
        if not self.settings.webhooks.sns_topic_arns:
            raise WebhookError("[webhooks] sns_topic_arns is not set: no SNS topic is trusted")
        message = _json(body)
        if not isinstance(message, dict):
            raise WebhookError("not an SNS message")
        await self.sns.verify(message)
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            await self.sns.confirm(message)
            return []
        if kind != "Notification":
            return []
        inner = _json(str(message.get("Message")), status=400)
        return ses_events(inner if isinstance(inner, dict) else {}, str(message.get("MessageId"))[:200])

    async def receive(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        body = await bounded_body(request, MAX_BODY)
        if body is None:
            return JSONResponse({"error": "request body too large"}, status_code=413, headers={"Connection": "close"})
        try:
            events = await self.events(provider, request, body)
        except WebhookError as exc:
            log.warning("webhook %s refused (%d): %s", provider, exc.status, exc)
            return JSONResponse({"error": "refused"}, status_code=exc.status)
        done = await run_in_threadpool(record_events, self.settings, events)
        return JSONResponse({"events": len(events), **done})


def _json(body: bytes | str, status: int = 401) -> object:
    """A body before its signature is checked: unreadable means unsigned (401) for Mailgun and SNS."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookError("the body is not JSON", status=status) from None


def webhook_routes(settings: Settings) -> list[Route]:
    return [Route("/webhooks/{provider}", _Receiver(settings).receive, methods=["POST"])]
