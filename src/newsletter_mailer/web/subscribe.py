"""The signup pages served with the unsubscribe endpoint: GET /subscribe (the form), POST
/subscribe (always the same "check your inbox" page), GET /confirm/TOKEN (a button; link
scanners follow links, so a GET never confirms) and POST /confirm/TOKEN (confirms).

The confirmation mail goes out after the response, so the answer takes the same time whether
a mail was sent, refused by a limit, or caught by the honeypot; nothing the page says or how
long it takes tells a visitor whether an address is subscribed.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..audience.links import signer_for
from ..audience.signup import (
    ConfirmCodec,
    FormError,
    RequestRef,
    SignupForm,
    confirmation_message,
    form_html,
    read_form,
)
from ..compose.dkim import dkim_signer
from ..compose.envelope import Envelope
from ..config import Settings
from ..errors import StateLost, StoreError, TokenError
from ..send.dispatch import delivery_route
from ..send.transport import SMTPTransport
from ..store.factory import open_store
from ..store.signup_log import PendingSignup, SignupLog

__all__ = ["MAX_BODY", "signup_routes"]

MAX_BODY = 8 * 1024  # a filled form is a few hundred bytes
log = logging.getLogger("newsletter_mailer.signup")
Page = Callable[[str, str, int], HTMLResponse]


class TooLarge(Exception):
    pass


async def _form_body(request: Request) -> dict[str, list[str]]:
    """The posted form, read no further than MAX_BODY bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise TooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise TooLarge
    return parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)


def send_confirmation(settings: Settings, envelope: Envelope) -> None:
    """Deliver one confirmation mail through the relay or the local outbox (in a worker thread)."""

    async def deliver(transport: SMTPTransport) -> str:
        connection = transport.connection()
        try:
            return str(await connection.send(envelope))
        finally:
            await connection.close()

    try:
        with delivery_route(settings) as route:
            outcome = asyncio.run(deliver(SMTPTransport(route.smtp)))
        log.info("confirmation mail: %s", outcome)
    except Exception as exc:  # the visitor has their page; the operator gets the log line
        log.warning("confirmation mail could not be sent: %s", exc)


def signup_routes(settings: Settings, page: Page, mask: Callable[[str], str]) -> list[Route]:
    signup = settings.signup
    news = settings.newsletter
    signer = signer_for(settings)
    codec = ConfirmCodec.for_list(signer.secret, signer.list_id, signup.confirm_hours)
    dkim = dkim_signer(settings)

    @contextmanager
    def signups() -> Iterator[SignupLog]:
        with open_store(settings) as store:  # the SQLite file or PostgreSQL, as a send reads it
            yield SignupLog(store)

    def form_page(error: str = "", email: str = "", status: int = 200) -> HTMLResponse:
        intro = f"<p>Get {html.escape(news.name)} by email. We will send you a link to confirm.</p>"
        return page(
            f"Subscribe to {news.name}",
            intro + form_html("/subscribe", signup.fields, error=error, email=email),
            status,
        )

    def check_inbox() -> HTMLResponse:
        return page(
            "Check your inbox",
            "<p>If the address can receive mail, a message with a confirmation link is on its way. "
            "Open it and press the button to start receiving "
            f"{html.escape(news.name)}. Nothing happens until you do.</p>",
            200,
        )

    def show_form(request: Request) -> Response:
        return form_page()

    def envelope_for(form: SignupForm, pending: PendingSignup) -> Envelope:
        token = codec.token(pending.id, pending.requested, pending.nonce, pending.address)
        url = f"{news.base_url.rstrip('/')}/confirm/{token}"
        message = confirmation_message(settings, form.subscriber, url)
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        if dkim is not None:
            data = dkim.sign(data)
        sender = settings.bounces.address or news.from_
        return Envelope(sender, form.subscriber.email, data, str(message["Message-ID"]))

    async def submit(request: Request) -> Response:
        try:
            form = read_form(await _form_body(request), signup.fields)
        except TooLarge:
            return page("Too much data", "<p>The form sent more than a signup needs.</p>", 413)
        except FormError as exc:
            return form_page(str(exc), status=400)
        ip = request.client.host if request.client else ""
        if form.bot:
            return check_inbox()
        with signups() as store:
            allowed = store.may_mail(
                form.subscriber.email,
                ip,
                per_address_per_day=signup.per_address_per_day,
                per_ip_per_hour=signup.per_ip_per_hour,
            )
            if not allowed:
                log.warning("signup limit reached for %s from %s", mask(form.subscriber.email), ip)
                return check_inbox()
            store.expire(time.time() - signup.confirm_hours * 3600)
            pending = store.request(form.subscriber, ip, signup.wording_version)
        response = check_inbox()
        response.background = BackgroundTask(send_confirmation, settings, envelope_for(form, pending))
        return response

    def request_of(request: Request) -> RequestRef | None:
        try:
            return codec.verify(request.path_params["token"])
        except TokenError:
            return None

    def invalid() -> HTMLResponse:
        return page(
            "This link is not valid",
            "<p>This confirmation link is not valid or has expired. "
            '<a href="/subscribe">Sign up again</a> to get a new one.</p>',
            400,
        )

    def confirm_page(request: Request) -> Response:
        ref = request_of(request)
        with signups() as store:
            pending = store.pending(ref) if ref is not None else None
        if pending is None:
            return invalid()
        action = html.escape(request.url.path)
        button = f'<form method="post" action="{action}"><button type="submit">Confirm</button></form>'
        return page(
            f"Confirm your subscription to {news.name}",
            f"<p>Send {html.escape(news.name)} to <strong>{html.escape(mask(pending.address))}</strong>?</p>" + button,
            200,
        )

    def confirm(request: Request) -> Response:
        ref = request_of(request)
        ip = request.client.host if request.client else ""
        try:
            with signups() as store:
                address = store.confirm(ref, ip) if ref is not None else None
        except (StoreError, OSError, StateLost):
            return page("Please try again", "<p>Something went wrong on our side. Please try again.</p>", 503)
        if address is None:
            return invalid()
        return page(
            f"You are subscribed to {news.name}",
            f"<p><strong>{html.escape(mask(address))}</strong> will receive the next issue. "
            "Every issue has a link to unsubscribe.</p>",
            200,
        )

    return [
        Route("/subscribe", show_form, methods=["GET"]),
        Route("/subscribe", submit, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
    ]
