"""The signup pages served with the unsubscribe endpoint: GET /subscribe (the form), POST
/subscribe (always the same "check your inbox" page), GET /confirm/TOKEN (a button; link
scanners follow links, so a GET never confirms) and POST /confirm/TOKEN (confirms).

Everything a signup does (the limits, the store, the confirmation mail) runs after the response
is sent, so the answer is the same page in the same time whether the address is new, subscribed,
over its limit or caught by the honeypot: nothing the page says or how long it takes tells a
visitor anything about an address. Only a visitor over the per-network limit gets another page
(429), decided before any work from what that visitor alone has sent (visitors.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import parse_qs

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..app.health import store_answers
from ..app.signup import confirm_signup, pending_signup, request_signup, send_confirmation
from ..app.stores import unmapped_faults
from ..audience.links import signer_for
from ..audience.signup import (
    MAX_FORM_FIELDS,
    ConfirmCodec,
    FormError,
    RequestRef,
    SignupForm,
    chosen_language,
    form_html,
    read_form,
)
from ..compose.confirmation import confirmation_envelope
from ..compose.dkim import dkim_signer
from ..compose.envelope import Envelope
from ..compose.i18n import catalogue, language_name
from ..config import Settings
from ..errors import StateLost, StoreError, TokenError
from .bodies import bounded_body
from .offload import Offload
from .pages import Pages
from .visitors import SignupGate, TrustedProxies

__all__ = ["MAX_BODY", "signup_routes"]

MAX_BODY = 8 * 1024  # a filled form is a few hundred bytes
log = logging.getLogger("newsletter_mailer.signup")


class TooLarge(Exception):
    pass


async def _form_body(request: Request, topics: int = 0) -> dict[str, list[str]]:
    """The posted form, read no further than MAX_BODY bytes whatever Content-Length claims, and of
    no more fields than the form has (``topics``: the checkboxes it offers)."""
    body = await bounded_body(request, MAX_BODY)
    if body is None:
        raise TooLarge
    try:
        return parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS + topics)
    except ValueError:  # more fields than any form of ours has
        raise TooLarge from None


def signup_routes(settings: Settings, page: Pages, mask: Callable[[str], str], store: Offload) -> list[Route]:
    signup = settings.signup
    news = settings.newsletter
    signer = signer_for(settings)
    codec = ConfirmCodec.for_list(signer.secret, signer.list_id, signup.confirm_hours)
    dkim = dkim_signer(settings)
    offered = news.offered_languages  # one: no choice on the form (docs/languages-signup.md)
    names = tuple((tag, language_name(tag)) for tag in offered)
    topics = settings.preferences.topics if settings.preferences.enabled else ()  # offered as on the preferences page

    faults: tuple[type[BaseException], ...] = (StateLost, StoreError, *unmapped_faults())

    def form_page(language: str, error: str = "", email: str = "", status: int = 200) -> HTMLResponse:
        words = catalogue(language).gettext  # the form's labels, in the page's language
        action = "/subscribe" if language == news.language else f"/subscribe?lang={language}"
        form = form_html(
            action,
            signup.fields,
            error=error,
            email=email,
            gettext=words,
            languages=names,
            chosen=language,
            topics=topics,
        )
        return page("subscribe", status, language, form=Markup(form))

    def show_form(request: Request) -> Response:
        return form_page(page.choose(request.query_params.get("lang", ""), offered_only=True))

    def envelope_for(form: SignupForm, ref: RequestRef) -> Envelope:
        token = codec.token(ref.id, ref.requested, ref.nonce, ref.address)
        url = f"{news.base_url.rstrip('/')}/confirm/{token}"
        return confirmation_envelope(settings, form.subscriber, url, dkim, form.language)

    gate = SignupGate(signup.per_ip_per_hour)
    proxies = TrustedProxies(settings.serve.proxy_networks)

    # Whether the last signup could reach the store. The answer is sent before the store is
    # touched, so only the signups after a failure can be told to come back (503); each such answer
    # sends a probe, and the first that reaches the store lets the form work again.
    store_down = threading.Event()

    def probe() -> None:
        try:
            store_answers(settings)
        except faults:
            return
        store_down.clear()

    def record_and_mail(form: SignupForm, ip: str) -> None:
        """Everything a signup does, run after its answer was sent, whatever the outcome: the page
        and its timing cannot tell a new address from one subscribed, limited or mistyped."""
        address = form.subscriber.email
        try:
            pending = request_signup(settings, form, ip)
        except faults as exc:
            store_down.set()
            log.error("signup for %s from %s NOT recorded: %s", mask(address), ip, exc)
            return
        if pending is None:
            log.warning("signup limit reached for %s from %s", mask(address), ip)
            return
        send_confirmation(settings, envelope_for(form, pending.ref), mask)

    async def submit(request: Request) -> Response:
        shown = page.choose(request.query_params.get("lang", ""), offered_only=True)
        try:
            posted = await _form_body(request, len(topics))
        except TooLarge:
            return page("too_large", 413, shown)
        shown = chosen_language(posted, offered) or shown  # a refused form is answered in its choice
        try:
            form = read_form(posted, signup.fields, offered, catalogue(shown).gettext, topics)
        except FormError as exc:
            return form_page(shown, str(exc), status=400)
        language = form.language or shown
        forwarded = ", ".join(request.headers.getlist("x-forwarded-for")) or None
        ip = proxies.client(request.client.host if request.client else "", forwarded)
        if not gate.admit(ip):  # about the visitor's own network, never about the address typed
            log.warning("signups from %s over [signup] per_ip_per_hour; answered 429", ip)
            return page("signup_later", 429, language)
        if store_down.is_set():  # the same for every address: it says nothing about one
            response = page("confirm_failed", 503, language)
            response.background = BackgroundTask(probe)
            return response
        response = page("check_inbox", 200, language)
        if not form.bot:  # the honeypot was filled: the same answer, and nothing done
            response.background = BackgroundTask(record_and_mail, form, ip)
        return response

    def request_of(request: Request) -> RequestRef | None:
        try:
            return codec.verify(request.path_params["token"])
        except TokenError:
            return None

    def invalid() -> HTMLResponse:
        return page("confirm_invalid", 400)

    async def confirm_page(request: Request) -> Response:
        ref = request_of(request)
        pending = await store.run(pending_signup, settings, ref) if ref is not None else None
        if pending is None:
            return invalid()
        language = page.choose(pending.language)
        return page("confirm", 200, language, who=mask(pending.address), action=request.url.path)

    async def confirm(request: Request) -> Response:
        ref = request_of(request)
        ip = request.client.host if request.client else ""
        try:
            done = await store.run(confirm_signup, settings, ref, ip) if ref is not None else None
        except faults:
            return page("confirm_failed", 503)
        if done is None:
            return invalid()
        return page("confirmed", 200, page.choose(done.language), who=mask(done.address))

    return [
        Route("/subscribe", show_form, methods=["GET"]),
        Route("/subscribe", submit, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
    ]
