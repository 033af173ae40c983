"""The unsubscribe endpoint (Starlette, served by uvicorn): a confirmation page on GET, an
immediate unsubscribe on POST (the page's button and RFC 8058 one-click), an undo, a health check.

A GET never unsubscribes, because mail scanners follow links. A bad token gets a 400 that says
nothing about why. Pages are plain HTML with no JavaScript, in the newsletter's language. A link
from a [TEST] copy shows the same pages, changes nothing, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..app import unsubscribe as unsubscribing
from ..app.health import store_answers
from ..app.stores import describe_fault, unmapped_faults
from ..audience.links import TokenSubject, signer_for
from ..config import Settings
from ..errors import NotRecorded, StateLost, StoreError, TokenError
from .bodies import bounded_body
from .offload import HealthProbe, Offload
from .pages import Pages

BODY_LIMIT = 4096  # a one-click unsubscribe sends 26 bytes; nothing here needs more
log = logging.getLogger("newsletter_mailer.web")


def mask(address: str) -> str:
    """``ada.lovelace@example.org`` -> ``ad**********@example.org``: recognisable, not readable."""
    local, _, domain = address.rpartition("@")
    shown = local[:2] if len(local) > 3 else local[:1]
    return f"{shown}{'*' * max(len(local) - len(shown), 3)}@{domain}"


def create_app(settings: Settings, offload: Offload | None = None) -> Starlette:
    """The pages; ``offload``: the bounded threads and deadline the store is reached through."""
    from .preferences import preference_routes
    from .static import site_routes
    from .subscribe import signup_routes  # the signup pages share this app and its page style
    from .webhooks import webhook_routes

    signer = signer_for(settings)
    render_page = Pages(settings)
    store = offload or Offload()
    health = HealthProbe(store, lambda: store_answers(settings))

    def invalid(language: str = "") -> HTMLResponse:
        return render_page("unsubscribe_invalid", 400, language)

    def language_of(request: Request) -> tuple[str, str]:
        return render_page.from_link(request.query_params.get("lang", ""))

    def not_recorded(token: str, exc: BaseException, language: str, query: str) -> HTMLResponse:
        # The request must not be lost silently: the log line carries what replays it.
        log.error(
            "unsubscribe NOT recorded (%s); replay it with: %s",
            exc.__cause__ or exc if isinstance(exc, NotRecorded) else exc,
            unsubscribing.replay_command(token),
        )
        return render_page("not_recorded", 503, language, action=f"/unsubscribe/{token}{query}")

    def subject_of(request: Request) -> TokenSubject | None:
        try:
            return signer.read(request.path_params["token"])
        except TokenError:
            return None

    async def confirm(request: Request) -> Response:
        language, query = language_of(request)
        subject = subject_of(request)
        if subject is None:
            return invalid(language)
        current = await store.run(unsubscribing.subscription_of, settings, subject.address)
        who = mask(subject.address)  # the template escapes it
        if current is not None and not subject.test:
            action = f"/resubscribe/{request.path_params['token']}{query}"
            return render_page("already_unsubscribed", language=language, who=who, action=action)
        action = f"{request.url.path}{query}"
        return render_page("unsubscribe", language=language, who=who, action=action, test=subject.test)

    faults: tuple[type[BaseException], ...] = (StoreError, StateLost, *unmapped_faults())

    async def unsubscribe(request: Request) -> Response:
        body = await bounded_body(request, BODY_LIMIT)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413, headers={"Connection": "close"})
        language, query = language_of(request)
        subject = subject_of(request)
        if subject is None:
            return invalid(language)
        source = "one-click" if b"List-Unsubscribe=One-Click" in body else "web page"
        token = request.path_params["token"]
        try:
            await store.run(unsubscribing.unsubscribe, settings, token, source)
        except faults as exc:  # a deadline missed too
            return not_recorded(token, exc, language, query)
        return render_page(
            "unsubscribed",
            language=language,
            who=mask(subject.address),
            action=f"/resubscribe/{token}{query}",
            test=subject.test,
        )

    async def resubscribe(request: Request) -> Response:
        language, query = language_of(request)
        subject = subject_of(request)
        if subject is None:
            return invalid(language)
        who = mask(subject.address)
        if await store.run(unsubscribing.resubscribe, settings, subject) is not None:
            return render_page("resubscribe_refused", language=language, who=who)
        action = f"/unsubscribe/{request.path_params['token']}{query}"
        return render_page("resubscribed", language=language, who=who, action=action, test=subject.test)

    async def healthz(request: Request) -> Response:
        if not await health.healthy():
            return PlainTextResponse("database unavailable", status_code=503)
        return PlainTextResponse("ok")

    def unavailable(request: Request, exc: Exception) -> Response:
        """The store or the machine failed under a page that changes nothing (a GET, a signup):
        one line in the log, and a page that says to come back, not a 500 with a traceback."""
        said = exc if isinstance(exc, StoreError | StateLost) else describe_fault(exc)
        log.error("%s %s: the store is unavailable: %s", request.method, request.url.path, said)
        return render_page("unavailable", 503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if offload is None:
            store.close()

    return Starlette(
        lifespan=lifespan,
        exception_handlers=dict.fromkeys(faults, unavailable),
        routes=[
            Route("/unsubscribe/{token}", confirm, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
            Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *signup_routes(settings, render_page, mask, store),
            *(preference_routes(settings, render_page, mask, store) if settings.preferences.enabled else ()),
            *webhook_routes(settings),
            *site_routes(settings),  # the web archive (newsletter publish), last: it answers the rest
        ],
    )
