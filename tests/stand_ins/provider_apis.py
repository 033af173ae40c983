"""Local stand-ins for the providers' sending APIs, written from their published API references:
Amazon SES v2 SendEmail (SigV4-signed; Raw content; TooManyRequestsException on throttling;
MessageRejected; SES overwrites Date and Message-ID as its documentation says), Postmark's Email
API (X-Postmark-Server-Token; ErrorCode 10, 300, 406; 429) and Mailgun's messages.mime (basic
auth api:KEY; multipart form; 429; 5xx). Each is an ASGI app for the tests' uvicorn server, with
faults to inject: the first N sends throttled or failed with a 500 after the message was kept."""

from __future__ import annotations

import base64
import email.utils
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter_mailer.send.providers.sigv4 import Credentials, sign

AKID = "AKIDEXAMPLESTANDIN"
SECRET = "stand-in-secret-access-key"
POSTMARK_TOKEN = "postmark-server-token"
MAILGUN_KEY = "mailgun-api-key"
MAILGUN_DOMAIN = "mg.example.org"


@dataclass
class Faults:
    throttle_first: int = 0  # the first N sends get the provider's throttling reply
    fail_after_keeping_first: int = 0  # the first N sends are kept, then answered with a 500
    reject: frozenset[str] = frozenset()  # recipients refused as the provider documents


@dataclass
class Kept:
    recipient: str
    data: bytes  # the MIME as the provider would send it (SES: with its own Date and Message-ID)
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class StandIn:
    faults: Faults = field(default_factory=Faults)
    kept: list[Kept] = field(default_factory=list)
    sends: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_send(self) -> tuple[bool, bool]:
        """(throttle this one, fail this one after keeping it)."""
        with self.lock:
            self.sends += 1
            number = self.sends
        throttle = number <= self.faults.throttle_first
        fail = not throttle and number - self.faults.throttle_first <= self.faults.fail_after_keeping_first
        return throttle, fail

    def keep(self, kept: Kept) -> None:
        with self.lock:
            self.kept.append(kept)


def _ses_error(status: int, kind: str, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": f"{kind}:"})


def _ses_signed(request: Request, body: bytes) -> bool:
    """Recompute the SigV4 Authorization from the headers the client says it signed."""
    given = request.headers.get("authorization", "")
    match = re.match(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/ses/aws4_request, SignedHeaders=([^,]+), ", given
    )
    if not match or match.group(1) != AKID:
        return False
    names = [n for n in match.group(4).split(";") if n not in ("x-amz-date", "x-amz-security-token")]
    headers = {n: request.headers.get(n, "") for n in names}
    stamp = request.headers.get("x-amz-date", "")
    expected = sign(
        request.method, str(request.url), headers, body, Credentials(AKID, SECRET), match.group(3), "ses", stamp
    )
    return expected["Authorization"] == given


def ses_app(state: StandIn) -> Starlette:
    async def account(request: Request) -> Response:
        if not _ses_signed(request, b""):
            return _ses_error(
                403, "SignatureDoesNotMatchException", "The request signature we calculated does not match"
            )
        return JSONResponse({"SendingEnabled": True, "ProductionAccessEnabled": True, "SendQuota": {"MaxSendRate": 14}})

    async def send(request: Request) -> Response:
        body = await request.body()
        if not _ses_signed(request, body):
            return _ses_error(
                403, "SignatureDoesNotMatchException", "The request signature we calculated does not match"
            )
        data = json.loads(body)
        recipient = data["Destination"]["ToAddresses"][0]
        throttle, fail = state.next_send()
        if throttle:
            return _ses_error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        if recipient in state.faults.reject:
            return _ses_error(400, "MessageRejected", "Email address is not verified.")
        raw = base64.b64decode(data["Content"]["Raw"]["Data"])
        message_id = f"0100018c{uuid.uuid4().hex}-000000"
        state.keep(Kept(recipient, _as_ses_sends_it(raw, message_id), data))
        if fail:
            return _ses_error(500, "InternalFailure", "The request processing has failed because of an unknown error")
        return JSONResponse({"MessageId": message_id})

    return Starlette(
        routes=[
            Route("/v2/email/account", account, methods=["GET"]),
            Route("/v2/email/outbound-emails", send, methods=["POST"]),
        ]
    )


def _as_ses_sends_it(raw: bytes, message_id: str) -> bytes:
    """SES overwrites Date and Message-ID (its "Amazon SES header fields" page)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = re.sub(rb"\r\n[ \t]", b" ", head).split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith((b"date:", b"message-id:"))]
    kept += [
        b"Date: " + email.utils.formatdate(usegmt=True).encode(),
        f"Message-ID: <{message_id}@email.amazonses.com>".encode(),
    ]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def postmark_app(state: StandIn) -> Starlette:
    def refused(status: int, code: int, message: str) -> Response:
        return JSONResponse({"ErrorCode": code, "Message": message}, status_code=status)

    def authorised(request: Request) -> bool:
        return request.headers.get("x-postmark-server-token") == POSTMARK_TOKEN

    async def server(request: Request) -> Response:
        if not authorised(request):
            return refused(401, 10, "No Account or Server API tokens were supplied in the HTTP headers.")
        return JSONResponse({"ID": 1, "Name": "Newsletter", "ApiTokens": ["hidden"]})

    async def send(request: Request) -> Response:
        if not authorised(request):
            return refused(401, 10, "No Account or Server API tokens were supplied in the HTTP headers.")
        data = await request.json()
        throttle, _ = state.next_send()
        if throttle:
            return refused(429, 429, "Rate limit exceeded.")
        if not all(data.get(k) for k in ("From", "To", "Subject")) or not (
            data.get("HtmlBody") or data.get("TextBody")
        ):
            return refused(422, 300, "Invalid email request")
        if data["To"] in state.faults.reject:
            return refused(422, 406, "You tried to send to recipient(s) that have been marked as inactive.")
        state.keep(Kept(data["To"], b"", data))
        return JSONResponse(
            {
                "To": data["To"],
                "SubmittedAt": "2026-12-04T12:00:00Z",
                "MessageID": str(uuid.uuid4()),
                "ErrorCode": 0,
                "Message": "OK",
            }
        )

    return Starlette(routes=[Route("/server", server, methods=["GET"]), Route("/email", send, methods=["POST"])])


def _form(content_type: str, body: bytes) -> dict[str, bytes]:
    """A multipart/form-data body's fields, names to the exact bytes sent (RFC 7578)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    fields = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            fields[name.group(1).decode()] = value.removesuffix(b"\r\n")
    return fields


def mailgun_app(state: StandIn) -> Starlette:
    def authorised(request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
        return request.headers.get("authorization") == expected

    async def domain(request: Request) -> Response:
        if not authorised(request):
            return PlainTextResponse("Forbidden", status_code=401)
        if request.path_params["domain"] != MAILGUN_DOMAIN:
            return JSONResponse({"message": "Domain not found"}, status_code=404)
        return JSONResponse({"domain": {"name": MAILGUN_DOMAIN, "state": "active"}})

    async def send(request: Request) -> Response:
        if not authorised(request):
            return PlainTextResponse("Forbidden", status_code=401)
        fields = _form(request.headers.get("content-type", ""), await request.body())
        throttle, fail = state.next_send()
        if throttle:
            return JSONResponse({"message": "Too many requests"}, status_code=429)
        recipient = fields.get("to", b"").decode()
        if recipient in state.faults.reject or "message" not in fields:
            return JSONResponse(
                {"message": "'to' parameter is not a valid address. please check documentation"}, status_code=400
            )
        state.keep(Kept(recipient, fields["message"], {k: v.decode() for k, v in fields.items() if k != "message"}))
        if fail:
            return JSONResponse({"message": "Internal Server Error"}, status_code=500)
        return JSONResponse({"id": f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>", "message": "Queued. Thank you."})

    return Starlette(
        routes=[
            Route("/v3/domains/{domain}", domain, methods=["GET"]),
            Route("/v3/{domain}/messages.mime", send, methods=["POST"]),
        ]
    )
