"""The signup pages served with the unsubscribe endpoint: GET /subscribe (the form), POST
/subscribe (always the same "check your inbox" page), GET /confirm/TOKEN (a button; link
scanners follow links, so a GET never confirms) and POST /confirm/TOKEN (confirms).

The confirmation mail goes out after the response, so the answer takes the same time whether
a mail was sent, refused by a limit, or caught by the honeypot; nothing the page says or how
long it takes tells a visitor whether an address is subscribed.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..app.signup import confirm_signup, pending_signup, request_signup, send_confirmation
from ..app.stores import unmapped_faults
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
from .offload import Offload

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


def signup_routes(settings: Settings, page: Page, mask: Callable[[str], str], store: Offload) -> list[Route]:
    signup = settings.signup
    news = settings.newsletter
    signer = signer_for(settings)
    codec = ConfirmCodec.for_list(signer.secret, signer.list_id, signup.confirm_hours)
    dkim = dkim_signer(settings)

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

    def envelope_for(form: SignupForm, ref: RequestRef) -> Envelope:
        token = codec.token(ref.id, ref.requested, ref.nonce, ref.address)
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
        pending = await store.run(request_signup, settings, form, ip)
        if pending is None:
            log.warning("signup limit reached for %s from %s", mask(form.subscriber.email), ip)
            return check_inbox()
        response = check_inbox()
        response.background = BackgroundTask(send_confirmation, settings, envelope_for(form, pending.ref))
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

    async def confirm_page(request: Request) -> Response:
        ref = request_of(request)
        pending = await store.run(pending_signup, settings, ref) if ref is not None else None
        if pending is None:
            return invalid()
        action = html.escape(request.url.path)
        button = f'<form method="post" action="{action}"><button type="submit">Confirm</button></form>'
        return page(
            f"Confirm your subscription to {news.name}",
            f"<p>Send {html.escape(news.name)} to <strong>{html.escape(mask(pending.address))}</strong>?</p>" + button,
            200,
        )

    faults: tuple[type[BaseException], ...] = (StateLost, StoreError, *unmapped_faults())

    async def confirm(request: Request) -> Response:
        ref = request_of(request)
        ip = request.client.host if request.client else ""
        try:
            address = await store.run(confirm_signup, settings, ref, ip) if ref is not None else None
        except faults:
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
