"""The unsubscribe endpoint (Starlette, served by uvicorn): a confirmation page on GET, an
immediate unsubscribe on POST (the page's button and RFC 8058 one-click), an undo, a health check.

A GET never unsubscribes, because mail scanners follow links. A bad token gets a 400 that says
nothing about why. Pages are plain HTML with no JavaScript, in the newsletter's language. A link
from a [TEST] copy shows the same pages, changes nothing, and says so.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..audience.links import TokenSubject, signer_for
from ..audience.suppressions import SuppressionList
from ..config import Settings
from ..errors import StateLost, StoreError, TokenError
from ..store.database import describe_fault
from ..store.factory import describe_store_fault, environment_faults, open_store
from .pages import Pages

BODY_LIMIT = 4096  # a one-click unsubscribe sends 26 bytes; nothing here needs more
log = logging.getLogger("newsletter_mailer.web")


def mask(address: str) -> str:
    """``ada.lovelace@example.org`` -> ``ad**********@example.org``: recognisable, not readable."""
    local, _, domain = address.rpartition("@")
    shown = local[:2] if len(local) > 3 else local[:1]
    return f"{shown}{'*' * max(len(local) - len(shown), 3)}@{domain}"


async def small_body(request: Request) -> bytes | None:
    """The request body, or None once it passes BODY_LIMIT: a declared length is refused unread."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > BODY_LIMIT:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_LIMIT:
            return None
    return bytes(body)


def create_app(settings: Settings) -> Starlette:
    from .subscribe import signup_routes  # the signup pages share this app and its page style

    signer = signer_for(settings)
    render_page = Pages(settings)

    @contextmanager
    def suppressions() -> Iterator[SuppressionList]:
        with open_store(settings) as store:
            yield SuppressionList(store)

    def invalid() -> HTMLResponse:
        return render_page("unsubscribe_invalid", 400)

    def not_recorded(token: str, exc: sqlite3.Error | OSError | StateLost | StoreError) -> HTMLResponse:
        # The request must not be lost silently: the log line carries what replays it.
        log.error(
            "unsubscribe NOT recorded (%s); replay it with: newsletter unsubscribe --token %s",
            exc if isinstance(exc, StateLost | StoreError) else describe_fault(exc),
            token,
        )
        return render_page("not_recorded", 503, action=f"/unsubscribe/{token}")

    def subject_of(request: Request) -> TokenSubject | None:
        try:
            return signer.read(request.path_params["token"])
        except TokenError:
            return None

    def confirm(request: Request) -> Response:
        subject = subject_of(request)
        if subject is None:
            return invalid()
        with suppressions() as lst:
            current = lst.get(subject.address)
        who = mask(subject.address)
        if current is not None and not subject.test:
            return render_page("already_unsubscribed", who=who, action=f"/resubscribe/{request.path_params['token']}")
        return render_page("unsubscribe", who=who, action=str(request.url.path), test=subject.test)

    async def unsubscribe(request: Request) -> Response:
        body = await small_body(request)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413, headers={"Connection": "close"})
        subject = subject_of(request)
        if subject is None:
            return invalid()
        source = "one-click" if b"List-Unsubscribe=One-Click" in body else "web page"
        if not subject.test:
            try:
                with suppressions() as lst:
                    lst.add(subject.address, "unsubscribed", source)
            except (sqlite3.Error, OSError, StateLost, StoreError) as exc:
                return not_recorded(request.path_params["token"], exc)
        return render_page(
            "unsubscribed",
            who=mask(subject.address),
            action=f"/resubscribe/{request.path_params['token']}",
            test=subject.test,
        )

    def resubscribe(request: Request) -> Response:
        subject = subject_of(request)
        if subject is None:
            return invalid()
        who = mask(subject.address)
        if not subject.test:
            with suppressions() as lst:
                current = lst.get(subject.address)
                if current is not None and current.reason != "unsubscribed":
                    return render_page("resubscribe_refused", who=who)
                lst.remove(subject.address, "subscribed again on the web page")
        return render_page(
            "resubscribed", who=who, action=f"/unsubscribe/{request.path_params['token']}", test=subject.test
        )

    def healthz(request: Request) -> Response:
        try:
            with suppressions() as lst:
                len(lst)
        except (sqlite3.Error, StoreError):
            return PlainTextResponse("database unavailable", status_code=503)
        return PlainTextResponse("ok")

    def unavailable(request: Request, exc: Exception) -> Response:
        """The store or the machine failed under a page that changes nothing (a GET, a signup):
        one line in the log, and a page that says to come back, not a 500 with a traceback."""
        log.error("%s %s: the store is unavailable: %s", request.method, request.url.path, describe_store_fault(exc))
        return render_page("unavailable", 503)

    faults: tuple[type[BaseException], ...] = (*environment_faults(), StoreError, StateLost)
    return Starlette(
        exception_handlers=dict.fromkeys(faults, unavailable),
        routes=[
            Route("/unsubscribe/{token}", confirm, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
            Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *signup_routes(settings, render_page, mask),
        ],
    )
