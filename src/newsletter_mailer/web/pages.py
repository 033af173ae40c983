"""The served pages (unsubscribe, signup, confirm and their results) from Jinja templates under
templates/pages/, coloured by the email's palette so a bright or dark accent stays readable.

Every value is escaped by the template (autoescape on); handlers pass values, never markup,
except the signup form, which audience/signup.py builds escaped.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from ..compose.bidi import FSI, LRI, PDI, direction
from ..compose.i18n import catalogue
from ..compose.palette import palette_for
from ..compose.render import template_dirs
from ..config import Settings

__all__ = ["Pages"]


class Pages:
    """Renders ``templates/pages/<name>.html`` (a workspace's templates/ first) with the
    newsletter's name, language and palette."""

    def __init__(self, settings: Settings) -> None:
        self._env = Environment(
            loader=FileSystemLoader([str(d) for d in template_dirs(settings)]),
            autoescape=select_autoescape(["html"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        news = settings.newsletter
        self.gettext = catalogue(news.language).gettext
        self._env.install_gettext_translations(catalogue(news.language), newstyle=True)  # type: ignore[attr-defined]
        self._common = {
            "newsletter": news.name,
            "lang": news.language,
            "dir": direction(news.language),
            "palette": palette_for(settings.brand.accent, settings.brand.text_accent),
        }

    def text(self, name: str, **values: Any) -> str:
        """The page's HTML. On a right-to-left page the address and the newsletter's name are
        isolated (LRI/FSI ... PDI), so "ad***@example.org" keeps its order inside an Arabic sentence."""
        common = dict(self._common)
        if common["dir"] == "rtl":  # Unicode isolates, not <bdi>: the name is in <title> too
            common["newsletter"] = f"{FSI}{common['newsletter']}{PDI}"
            if "who" in values:
                values["who"] = f"{LRI}{values['who']}{PDI}"
        return self._env.get_template(f"pages/{name}.html").render({**common, "test": False, **values})

    def __call__(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """The page as a response: ``render_page("unsubscribed", who=...)``."""
        return HTMLResponse(self.text(name, **values), status_code=status)
