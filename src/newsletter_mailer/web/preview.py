"""A local page showing an issue at desktop and phone widths beside its text part, reloading
when the issue, the settings or a template is saved."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..app.reader import find_reader
from ..audience.links import signer_for
from ..compose.editions import Editions, each_language
from ..compose.envelope import MessageTemplate, fill_preview, preview_subscriber
from ..compose.issue import read_issue
from ..compose.render import render_issue, template_dirs
from ..config import Settings, load_settings
from ..errors import NewsletterError

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 0; background: #eef0f3; }}
 header {{ padding: 8px 16px; background: #24292f; color: #fff; }}
 /* Three columns where they fit; below that the phone and the text share the second column,
    so a 1,280 px window shows all three without scrolling sideways. */
 main {{ display: grid; gap: 16px; padding: 16px; align-items: start;
        grid-template-columns: 640px 375px minmax(0, 1fr); grid-template-areas: "desktop phone text"; }}
 figure {{ margin: 0; min-width: 0; }} figcaption {{ font-size: 13px; color: #57606a; margin-bottom: 4px; }}
 #f-desktop {{ grid-area: desktop; }} #f-phone {{ grid-area: phone; }} #f-text {{ grid-area: text; }}
 iframe {{ border: 1px solid #d0d7de; background: #fff; height: 85vh; display: block; }}
 pre {{ background: #fff; border: 1px solid #d0d7de; padding: 8px; height: 85vh; overflow: auto;
       box-sizing: border-box; width: 100%; max-width: 82ch; margin: 0; white-space: pre; font-size: 12px; }}
 @media (max-width: 1659px) {{
  main {{ grid-template-columns: 640px minmax(0, 1fr); grid-template-areas: "desktop phone" "desktop text"; }}
  #phone {{ height: 44vh; }} #text {{ height: 34vh; }}
 }}
 @media (max-width: 1239px) {{
  main {{ grid-template-columns: minmax(0, 1fr); grid-template-areas: "desktop" "phone" "text"; }}
  #desktop {{ width: 100%; max-width: 640px; }}
 }}
 .error {{ background: #ffebe9; color: #82071e; padding: 12px 16px; white-space: pre-wrap; }}
</style></head>
<body><header>{title} <small id="state"></small></header>
<main>
 <figure id="f-desktop"><figcaption>Desktop (640 px)</figcaption>
  <iframe id="desktop" title="Desktop view" src="/html" width="640"></iframe></figure>
 <figure id="f-phone"><figcaption>Phone (375 px)</figcaption>
  <iframe id="phone" title="Phone view" src="/html" width="375"></iframe></figure>
 <figure id="f-text"><figcaption>Text part</figcaption><pre id="text"></pre></figure>
</main>
<script>
let version = null;
async function refresh() {{
  try {{
    const v = await (await fetch('/version')).json();
    if (v.version !== version) {{
      version = v.version;
      for (const id of ['desktop', 'phone']) document.getElementById(id).src = '/html?v=' + version;
      document.getElementById('text').textContent = await (await fetch('/text')).text();
      document.getElementById('state').textContent = 'updated ' + new Date().toLocaleTimeString();
    }}
  }} catch (e) {{ document.getElementById('state').textContent = 'preview server stopped'; }}
}}
refresh(); setInterval(refresh, 1000);
</script></body></html>"""


class PreviewState:
    def __init__(self, issue_path: Path, config: Path | None, as_address: str | None = None) -> None:
        self.issue_path = issue_path
        self.config = config
        self.as_address = as_address  # show the copy this reader gets (their row, their variant)
        self._version = ""
        self._html = ""
        self._text = ""

    def watched(self, settings: Settings) -> list[Path]:
        files = [self.issue_path, settings.config_path]
        for folder in template_dirs(settings):
            files += sorted(folder.glob("*"))
        return files

    def version(self) -> str:
        try:
            settings = load_settings(self.config)
            stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in self.watched(settings) if p.exists()]
        except NewsletterError as exc:
            return f"error:{exc}"
        return str(hash(tuple(stamps)))

    def render(self) -> tuple[str, str]:
        version = self.version()
        if version != self._version:
            try:
                settings = load_settings(self.config)
                rendered = render_issue(read_issue(self.issue_path), settings)
                reader = preview_subscriber(settings)
                if self.as_address:  # the reader's topics, language and variant, as a send sees them
                    reader = find_reader(settings, None, self.as_address)
                    editions = each_language(
                        Editions(rendered, settings, lambda r: MessageTemplate(r, settings, signer_for(settings)))
                    ).for_reader(reader)
                    rendered = editions.rendered(editions.variant_of(reader))
                self._html, self._text = fill_preview(rendered, settings, signer_for(settings), reader)
            except NewsletterError as exc:
                message = html.escape(str(exc))
                self._html = f'<!doctype html><div class="error" style="color:#82071e">{message}</div>'
                self._text = str(exc)
            self._version = version
        return self._html, self._text


def create_app(issue_path: Path, config: Path | None = None, as_address: str | None = None) -> Starlette:
    state = PreviewState(issue_path, config, as_address)

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE.format(title=html.escape(issue_path.name)))

    async def rendered_html(request: Request) -> Response:
        return HTMLResponse(state.render()[0])

    async def rendered_text(request: Request) -> Response:
        return PlainTextResponse(state.render()[1])

    async def version(request: Request) -> Response:
        return JSONResponse({"version": state.version()})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/html", rendered_html),
            Route("/text", rendered_text),
            Route("/version", version),
        ]
    )
