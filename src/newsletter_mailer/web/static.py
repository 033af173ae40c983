"""The web archive that ``newsletter publish`` writes, served by ``newsletter serve`` beside the
unsubscribe and signup pages: static files with the right content type, ETag and
Last-Modified (a 304 when unchanged) and Cache-Control (a year for the content-hashed media,
five minutes for pages and feeds, which change when an issue is sent).

The folder may not exist yet (nothing sent): its pages answer 404 until it does.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from ..config import Settings

__all__ = ["CONTENT_TYPES", "SiteFiles", "site_routes"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",  # the archive's one XML file is its Atom feed
    ".ics": "text/calendar; charset=utf-8",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
}
MEDIA_CACHE = "public, max-age=31536000, immutable"  # a media file's name is its content
PAGE_CACHE = "public, max-age=300"


class SiteFiles(StaticFiles):
    """Starlette's StaticFiles (no symlinks out, no ``..``) with our types and caching; a
    dotfile (the manifest) or a folder that is not there yet is a 404."""

    async def check_config(self) -> None:
        if os.path.isdir(str(self.directory)):  # else nothing is published yet: 404s, not a 500
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") for part in Path(path).parts) or not os.path.isdir(str(self.directory)):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        suffix = Path(full_path).suffix.lower()
        media = Path(full_path).parent.name == "media"
        response = FileResponse(
            full_path,
            status_code=status_code,
            stat_result=stat_result,
            media_type=CONTENT_TYPES.get(suffix),
            headers={"Cache-Control": MEDIA_CACHE if media else PAGE_CACHE, "X-Content-Type-Options": "nosniff"},
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def site_routes(settings: Settings) -> list[BaseRoute]:
    """The archive at the root, after every other route (``/unsubscribe/...`` and the signup
    pages come first and are never shadowed by a file)."""
    folder = settings.path(settings.publish.out)
    return [Mount("/", app=SiteFiles(directory=folder, html=True, check_dir=False), name="site")]
