"""The served pages (unsubscribe, signup, confirm and their results) from Jinja templates under
templates/pages/, coloured by the email's palette so a bright or dark accent stays readable.

Every value is escaped by the template (autoescape on); handlers pass values, never markup,
except the signup form, which audience/signup.py builds escaped.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from starlette.responses import HTMLResponse

from ..compose.bidi import FSI, LRI, PDI, direction
from ..compose.i18n import catalogue, page_language, template_environment
from ..compose.palette import palette_for
from ..compose.render import template_dirs
from ..config import Settings

__all__ = ["Pages"]


class Pages:
    """Renders ``templates/pages/<name>.html`` (a workspace's templates/ first) with the
    newsletter's name, palette and language, or a reader's own (one template environment per
    language, made on first use)."""

    def __init__(self, settings: Settings) -> None:
        self._dirs = [str(d) for d in template_dirs(settings)]
        news = settings.newsletter
        self.language = news.language
        self.offered = news.offered_languages
        self.gettext = catalogue(news.language).gettext
        self._envs: dict[str, Environment] = {}
        self._common = {
            "newsletter": news.name,
            "palette": palette_for(settings.brand.accent, settings.brand.text_accent),
        }

    def choose(self, requested: str, *, offered_only: bool = False) -> str:
        """The language for a page from a visitor's ``?lang=`` or a stored choice (validated:
        compose/i18n.py ``page_language``); the newsletter's when it names none we can show
        (``offered_only``: none of ``[newsletter] languages``, as the signup form's pages)."""
        return page_language(requested, self.offered, self.language, shipped=not offered_only)

    def from_link(self, requested: str) -> tuple[str, str]:
        """The reader's language from a link's ``?lang=`` (set by the email it came from, validated
        here) and the query that keeps it on the page's own forms and links ("" for the main one)."""
        language = self.choose(requested)
        return language, ("" if language == self.language else f"?lang={language}")

    def _env(self, language: str) -> Environment:
        env = self._envs.get(language)
        if env is None:
            env = self._envs[language] = template_environment(self._dirs, language, escape_any_name=True)
        return env

    def text(self, name: str, language: str = "", **values: Any) -> str:
        """The page's HTML in ``language`` (already chosen: ``choose``), else the newsletter's. On
        a right-to-left page the address and the newsletter's name are isolated (LRI/FSI ... PDI),
        so "ad***@example.org" keeps its order inside an Arabic sentence."""
        language = language or self.language
        common = {**self._common, "lang": language, "dir": direction(language)}
        if common["dir"] == "rtl":  # Unicode isolates, not <bdi>: the name is in <title> too
            common["newsletter"] = f"{FSI}{common['newsletter']}{PDI}"
            if "who" in values:
                values["who"] = f"{LRI}{values['who']}{PDI}"
        return self._env(language).get_template(f"pages/{name}.html").render({**common, "test": False, **values})

    def __call__(self, name: str, status: int = 200, language: str = "", **values: Any) -> HTMLResponse:
        """The page as a response: ``render_page("unsubscribed", who=...)``."""
        return HTMLResponse(self.text(name, language, **values), status_code=status)
