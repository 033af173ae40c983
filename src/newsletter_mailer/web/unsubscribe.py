"""The unsubscribe endpoint (Starlette, served by uvicorn): a confirmation page on GET, an
immediate unsubscribe on POST (the page's button and RFC 8058 one-click), an undo, a health check.

A GET never unsubscribes, because mail scanners follow links. A bad token gets a 400 that says
nothing about why. Pages are plain HTML with no JavaScript, in the newsletter's language. A link
from a [TEST] copy shows the same pages, changes nothing, and says so.
"""

from __future__ import annotations

import html
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

BODY_LIMIT = 4096  # a one-click unsubscribe sends 26 bytes; nothing here needs more
log = logging.getLogger("newsletter_mailer.web")

PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
 body {{ font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; margin: 0; background: #f2f4f7;
        color: #1f2328; }}
 main {{ max-width: 32rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px; }}
 h1 {{ font-size: 1.4rem; margin-top: 0; }}
 button {{ font: inherit; font-weight: bold; color: #fff; background: {accent}; border: 0; border-radius: 4px;
          padding: .75rem 1.5rem; cursor: pointer; }}
 button:focus-visible {{ outline: 3px solid #1f2328; outline-offset: 2px; }}
 .secondary {{ background: #57606a; }}
 .test {{ background: #fff8c5; border: 1px solid #d4a72c; padding: .75rem; border-radius: 4px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


TEST_NOTICE = (
    '<p class="test"><strong>This link is from a test copy.</strong> The pages are the real ones, '
    "but nothing you do here changes any subscription.</p>"
)


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
    from .static import site_routes
    from .subscribe import signup_routes  # the signup pages share this app and its page style

    signer = signer_for(settings)
    news = settings.newsletter
    name = html.escape(news.name)

    @contextmanager
    def suppressions() -> Iterator[SuppressionList]:
        with open_store(settings) as store:
            yield SuppressionList(store)

    def page(title: str, body: str, status: int = 200, test: bool = False) -> HTMLResponse:
        return HTMLResponse(
            PAGE.format(
                lang=html.escape(news.language),
                title=html.escape(title),
                body=(TEST_NOTICE if test else "") + body,
                accent=html.escape(settings.brand.accent),
            ),
            status_code=status,
        )

    def invalid() -> HTMLResponse:
        return page(
            "This link is not valid",
            "<p>This unsubscribe link is not valid. If you copied it from an email, check that the whole "
            "link was copied, or reply to the newsletter and ask to be removed.</p>",
            400,
        )

    def not_recorded(token: str, exc: sqlite3.Error | OSError | StateLost | StoreError) -> HTMLResponse:
        # The request must not be lost silently: the log line carries what replays it.
        log.error(
            "unsubscribe NOT recorded (%s); replay it with: newsletter unsubscribe --token %s",
            exc if isinstance(exc, StateLost | StoreError) else describe_fault(exc),
            token,
        )
        return page(
            "Please try again in a few minutes",
            "<p>We could not record your request just now. Nothing has changed yet; please use the link "
            "again in a few minutes.</p>" + form(f"/unsubscribe/{token}", "Try again"),
            503,
        )

    def form(action: str, label: str, css: str = "") -> str:
        cls = f' class="{css}"' if css else ""
        return (
            f'<form method="post" action="{html.escape(action)}">'
            f'<button type="submit"{cls}>{html.escape(label)}</button></form>'
        )

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
        who = html.escape(mask(subject.address))
        if current is not None and not subject.test:
            return page(
                f"You are unsubscribed from {news.name}",
                f"<p><strong>{who}</strong> no longer receives {name}.</p>"
                + form(f"/resubscribe/{request.path_params['token']}", "Subscribe again", "secondary"),
            )
        return page(
            f"Unsubscribe from {news.name}?",
            f"<p>Stop sending {name} to <strong>{who}</strong>?</p>" + form(str(request.url.path), "Unsubscribe"),
            test=subject.test,
        )

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
        return page(
            f"You are unsubscribed from {news.name}",
            f"<p><strong>{html.escape(mask(subject.address))}</strong> will not receive {name} any more. "
            "This takes effect at once, including for an issue that is being sent now.</p>"
            "<p>Unsubscribed by mistake?</p>"
            + form(f"/resubscribe/{request.path_params['token']}", "Subscribe again", "secondary"),
            test=subject.test,
        )

    def resubscribe(request: Request) -> Response:
        subject = subject_of(request)
        if subject is None:
            return invalid()
        who = html.escape(mask(subject.address))
        if not subject.test:
            with suppressions() as lst:
                current = lst.get(subject.address)
                if current is not None and current.reason != "unsubscribed":
                    return page(
                        "Cannot subscribe this address again here",
                        f"<p>{who} was removed because mail to it could not be delivered or at the "
                        "organiser's request. Reply to the newsletter to be added again.</p>",
                    )
                lst.remove(subject.address, "subscribed again on the web page")
        return page(
            f"You are subscribed to {news.name} again",
            f"<p><strong>{who}</strong> will receive {name} again.</p>"
            + form(f"/unsubscribe/{request.path_params['token']}", "Unsubscribe", "secondary"),
            test=subject.test,
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
        return page(
            "Please try again in a few minutes",
            "<p>This page is not available just now. Nothing has changed; please try again in a few minutes.</p>",
            503,
        )

    faults: tuple[type[BaseException], ...] = (*environment_faults(), StoreError, StateLost)
    return Starlette(
        exception_handlers=dict.fromkeys(faults, unavailable),
        routes=[
            Route("/unsubscribe/{token}", confirm, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
            Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *signup_routes(settings, page, mask),
            *site_routes(settings),  # the web archive (newsletter publish), last: it answers the rest
        ],
    )
