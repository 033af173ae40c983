"""The editor's own images: ``![...](images/coats.jpg)`` beside the issue file (and, with
``[publish] copy_remote_images``, remote ones downloaded once) become files of the web archive
under a content hash, ``/media/<hash>.<ext>``, which the email links by absolute URL with the
image's real width and height.

Here each image is found, checked and measured from its header (nothing is decoded); the
archive's copy is resized and stripped of its metadata by publish/media.py. Every refusal is
one line naming the issue file's line: a path that leaves the issue's folder (``..``, an
absolute path, a symlink out), a missing file, one over 5 MB, a file that is not a JPEG, PNG,
GIF or WebP, or one whose pixels would not fit in memory.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape, unescape
from pathlib import Path
from urllib.parse import unquote

from PIL import Image, UnidentifiedImageError

from ..config import Settings
from ..errors import IssueError
from . import markup
from .issue import Issue
from .online import EMAIL_CONTENT_WIDTH, media_url, online

__all__ = [
    "FORMATS",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_WIDTH",
    "ImageResolver",
    "MediaImage",
    "is_local",
]

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_WIDTH = 2 * EMAIL_CONTENT_WIDTH  # sharp on a high-density screen, no larger
MAX_SIDE = 20_000  # px on either side: a larger one is no photo
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo fits; below Pillow's own bomb limit
FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
_VERSION = b"nlm-media-1"  # part of every name: a change in how images are made renames them all
_SWAPS = {5, 6, 7, 8}  # EXIF orientations that turn the picture a quarter


_IMG_SRC = re.compile(r'(<img\s+src=)"([^"]*)"')


def is_local(src: str) -> bool:
    """A path, not a URL: ``images/x.jpg`` (a scheme, ``//host`` or ``data:`` is not one)."""
    return bool(src) and not re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|//)", src)


@dataclass(frozen=True)
class MediaImage:
    """One image of the issue as the archive serves it: its name under /media/, its source,
    and the size of the served file (at most MAX_WIDTH wide)."""

    src: str  # as written in the issue
    source: Path  # the file read: beside the issue, or the download cache
    name: str  # <hash>.<ext>
    format: str  # the served file's: JPEG, PNG or GIF
    width: int
    height: int
    animated: bool

    def display(self, column: int = EMAIL_CONTENT_WIDTH) -> tuple[int, int]:
        """Width and height in CSS pixels in a column this wide."""
        width = min(self.width, column)
        return width, max(1, round(self.height * width / self.width))


def _refuse(message: str, issue: Issue, line: int) -> IssueError:
    return IssueError(message, file=issue.path, line=line)


def _local_file(issue: Issue, src: str, line: int) -> Path:
    """The file ``src`` names inside the issue's folder; anything else is refused."""
    relative = unquote(src.split("#")[0].split("?")[0])
    if relative.startswith(("/", "\\")) or re.match(r"^[a-zA-Z]:", relative):
        raise _refuse(f"image {src!r} is an absolute path: give a path relative to the issue file", issue, line)
    folder = issue.path.parent.resolve()
    target = (folder / relative).resolve()  # follows symlinks: one that points out is caught here
    if not target.is_relative_to(folder):
        raise _refuse(f"image {src!r} is outside the issue's folder: put it beside the issue file", issue, line)
    if not target.is_file():
        raise _refuse(f"image {src!r} not found (looked for {target})", issue, line)
    size = target.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise _refuse(f"image {src!r} is {size / 1024 / 1024:.1f} MB; at most 5 MB, please resize it", issue, line)
    return target


@dataclass(frozen=True)
class Measured:
    format: str
    width: int  # as shown: EXIF orientation applied
    height: int
    animated: bool
    alpha: bool


def measure(data: bytes, what: str) -> Measured:
    """Format and size from the header; ValueError saying why the bytes are no usable image."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind = image.format or ""
                if kind not in FORMATS:
                    raise ValueError(f"{what} is a {kind or 'file of unknown kind'}, not a JPEG, PNG, GIF or WebP")
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise ValueError(f"{what} is {width}x{height} pixels: too large to publish (at most 50 megapixels)")
                if image.getexif().get(0x0112) in _SWAPS:
                    width, height = height, width
                animated = bool(getattr(image, "is_animated", False))
                alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                return Measured(kind, width, height, animated, alpha)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(f"{what} claims more pixels than memory allows (a decompression bomb?)") from None
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise ValueError(f"{what} is not an image Pillow can read") from None


def served_format(measured: Measured) -> str:
    """WebP is not shown by every mail client: it is served as PNG (with alpha) or JPEG."""
    if measured.format == "WEBP":
        return "PNG" if measured.alpha or measured.animated else "JPEG"
    return measured.format


def media_image(src: str, source: Path, data: bytes, issue: Issue, line: int) -> MediaImage:
    try:
        measured = measure(data, f"image {src!r}")
    except ValueError as exc:
        raise _refuse(str(exc), issue, line) from None
    kind = served_format(measured)
    width, height = measured.width, measured.height
    if width > MAX_WIDTH and not (measured.animated and kind == "GIF"):
        width, height = MAX_WIDTH, max(1, round(height * MAX_WIDTH / width))
    digest = hashlib.sha256(_VERSION + b"\0" + str(MAX_WIDTH).encode() + b"\0" + data).hexdigest()[:20]
    return MediaImage(src, source, f"{digest}.{FORMATS[kind]}", kind, width, height, measured.animated)


def image_blocks(issue: Issue) -> Iterator[tuple[str, int]]:
    """Every image of the issue (src, file line), in the order they appear."""
    sources = [(issue.intro, issue.intro_line), *((s.body, s.line + 1) for s in issue.sections)]
    if issue.signoff:
        sources.append((issue.signoff, issue.signoff_line))
    for text, first_line in sources:
        for ref in markup.references(text, first_line):
            if ref.kind == "image":
                yield ref.url, ref.line


class ImageResolver:
    """The issue's images that the archive serves, found and measured once per render."""

    def __init__(self, issue: Issue, settings: Settings) -> None:
        self.issue, self.settings = issue, settings
        self._found: dict[str, MediaImage | None] = {}

    def served(self, src: str, line: int) -> MediaImage | None:
        """The archive's copy of an image, or None for a remote one that stays remote."""
        if src not in self._found:
            self._found[src] = self._resolve(src, line)
        return self._found[src]

    def _resolve(self, src: str, line: int) -> MediaImage | None:
        if is_local(src):
            if not online(self.settings):
                raise _refuse(
                    f"image {src!r} is a file: it needs the web archive ([publish] enabled = false)", self.issue, line
                )
            path = _local_file(self.issue, src, line)
            return media_image(src, path, path.read_bytes(), self.issue, line)
        if self.settings.publish.copy_remote_images and re.match(r"^https?://", src, re.IGNORECASE):
            from .remote import fetch_once  # httpx, only when remote images are copied

            path = fetch_once(src, self.settings, self.issue, line)
            return media_image(src, path, path.read_bytes(), self.issue, line)
        return None

    def address(self, image: MediaImage) -> str:
        return media_url(self.settings, image.name)

    def url(self, src: str, line: int) -> tuple[str, int, int]:
        """The address the email uses and the size it shows, (src, 0, 0) for a remote image."""
        image = self.served(src, line)
        if image is None:
            return src, 0, 0
        width, height = image.display()
        address = media_url(self.settings, image.name)
        return address, width, height

    def rewrite(self, html: str, line: int, address: Callable[[MediaImage], str]) -> str:
        """An image inside a paragraph of HTML: its ``src`` becomes ``address(image)`` (a block
        of Markdown has no finer line than ``line``, its first)."""

        def replace(match: re.Match[str]) -> str:
            image = self.served(unescape(match.group(2)), line)
            if image is None:
                return match.group(0)
            width, height = image.display()
            return f'{match.group(1)}"{escape(address(image), quote=True)}" width="{width}" height="{height}"'

        return _IMG_SRC.sub(replace, html)

    def all(self) -> list[MediaImage]:
        """Every image the archive serves for this issue, each once."""
        found = [self.served(src, line) for src, line in image_blocks(self.issue)]
        unique = {image.name: image for image in found if image is not None}
        return [unique[name] for name in sorted(unique)]
