"""An OAuth2 token endpoint (RFC 6749 client-credentials and refresh-token grants, JSON replies as
RFC 6749 5.1 and 5.2 give them) on 127.0.0.1, and an aiosmtpd relay that accepts XOAUTH2 only with
a token this endpoint issued and that has not expired, answering a bad one with the error
challenge Google documents (334 + base64 JSON, then 535 5.7.8 after the client's empty line)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from smtp_servers import RecordingHandler

CLIENT_ID = "newsletter-test-client"


@dataclass
class TokenIssuer:
    """The endpoint's state: tokens it issued (token -> (user, expiry)), revocations, requests."""

    client_secret: str
    refresh_token: str
    lifetime: float = 3600.0
    issued: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        kind = form.get("grant_type")
        if kind == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant"}
        if kind not in ("client_credentials", "refresh_token"):
            return 400, {"error": "unsupported_grant_type"}
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.issued[token] = time.time() + self.lifetime
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.issued.get(token)
        return expiry is not None and time.time() < expiry

    def revoke_all(self) -> None:
        with self.lock:
            self.issued.clear()


class TokenEndpoint:
    """``with TokenEndpoint(issuer) as url:`` a POST /token endpoint on loopback."""

    def __init__(self, issuer: TokenIssuer) -> None:
        issuer_ = issuer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("ascii")))
                status, body = issuer_.grant(form) if self.path == "/token" else (404, {"error": "not_found"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class OAuthHandler(RecordingHandler):
    """A recording relay whose only AUTH mechanism is XOAUTH2 against the issuer's tokens."""

    issuer: TokenIssuer
    user: str = ""
    logins: list[tuple[str, bool]]  # (token's last 4 characters, accepted)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, handled=False, message="501 5.5.2 initial response required")
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
        except ValueError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 cannot decode")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ") if len(fields) > 1 else ""
        ok = fields[2:] == ["", ""] and user == self.user and self.issuer.valid(token)
        self.logins.append((token[-4:], ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)  # the client answers with an empty line
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class OAuthRelay:
    """``with OAuthRelay(issuer, user) as relay:`` an SMTP server on loopback taking XOAUTH2 only."""

    def __init__(self, issuer: TokenIssuer, user: str) -> None:
        from conftest import free_port

        self.handler = OAuthHandler()
        self.handler.issuer, self.handler.user, self.handler.logins = issuer, user, []
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )

    def __enter__(self) -> OAuthRelay:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
