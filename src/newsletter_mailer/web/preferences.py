"""The preferences page, served with the unsubscribe pages and reached through the same signed
token: GET /preferences/TOKEN shows the reader's topics as checkboxes and a pause (1, 3 or 6
months, or resume); POST changes them. A GET never changes anything (mail scanners follow
links); the POST needs the token in its URL, which only the reader's own mail holds, as the
unsubscribe POST does, so another site cannot make a reader's browser change their choice
without it. A bad token gets the same 400 as a bad unsubscribe link."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..app.preferences import Preferences, change_preferences, preferences_of
from ..audience.choices import PAUSE_MONTHS, ChoiceError
from ..audience.links import TokenSubject, signer_for
from ..compose.i18n import catalogue, date_label
from ..config import Settings
from ..errors import TokenError
from .bodies import bounded_body
from .offload import Offload
from .pages import Pages
from .visitors import TrustedProxies

__all__ = ["preference_routes"]

MAX_FIELDS = 64  # the topics (at most 20) and a pause; a form with more is not ours
MAX_BODY = 4096  # twenty topics of 40 characters, URL-encoded, and a pause


def _until(paused_until: float, language: str) -> str:
    return date_label(dt.datetime.fromtimestamp(paused_until, dt.UTC).date(), language) if paused_until else ""


def preference_routes(settings: Settings, page: Pages, mask: Callable[[str], str], store: Offload) -> list[Route]:
    signer = signer_for(settings)
    proxies = TrustedProxies(settings.serve.proxy_networks)

    def subject_of(request: Request) -> TokenSubject | None:
        try:
            return signer.read(request.path_params["token"])
        except TokenError:
            return None

    def form_page(
        request: Request, subject: TokenSubject, shown: Preferences, error: str = "", status: int = 200
    ) -> HTMLResponse:
        token = request.path_params["token"]
        language, query = page.from_link(request.query_params.get("lang", ""))
        return page(
            "preferences",
            status,
            language,
            who=mask(subject.address),
            action=f"/preferences/{token}{query}",
            unsubscribe=f"/unsubscribe/{token}{query}",
            offered=shown.offered,
            ticked=shown.topics,
            months=PAUSE_MONTHS,
            paused_until=_until(shown.paused_until, language),
            error=error,
            test=subject.test,
            unsubscribed=shown.unsubscribed,
        )

    async def show(request: Request) -> Response:
        subject = subject_of(request)
        if subject is None:
            return page("preferences_invalid", 400, page.from_link(request.query_params.get("lang", ""))[0])
        shown = await store.run(preferences_of, settings, subject.address)
        return form_page(request, subject, shown)

    async def change(request: Request) -> Response:
        body = await bounded_body(request, MAX_BODY)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413, headers={"Connection": "close"})
        language, query = page.from_link(request.query_params.get("lang", ""))
        subject = subject_of(request)
        if subject is None:
            return page("preferences_invalid", 400, language)
        try:
            form = parse_qs(body.decode("utf-8", "strict"), max_num_fields=MAX_FIELDS, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            return page("preferences_invalid", 400, language)
        forwarded = ", ".join(request.headers.getlist("x-forwarded-for")) or None
        ip = proxies.client(request.client.host if request.client else "", forwarded)
        try:
            saved = await store.run(change_preferences, settings, subject, form, ip)
        except ChoiceError as exc:
            shown = await store.run(preferences_of, settings, subject.address)
            return form_page(request, subject, shown, catalogue(language).gettext(str(exc)), 400)
        return page(
            "preferences_saved",
            language=language,
            who=mask(subject.address),
            topics=saved.topics,
            offered=settings.preferences.topics,
            paused_until=_until(saved.paused_until, language),
            unsubscribed=saved.unsubscribed,
            back=f"/preferences/{request.path_params['token']}{query}",
            test=subject.test,
        )

    return [
        Route("/preferences/{token}", show, methods=["GET"]),
        Route("/preferences/{token}", change, methods=["POST"]),
    ]
