"""The archive's copy of each of the editor's images (compose/images.py found and measured
them): turned upright, at most twice the email's column wide, and re-encoded, which also drops
the camera's metadata (EXIF: where and when a photo was taken). The same source gives the same
bytes under the same name, run after run. An animated GIF is served as it is.
"""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image, ImageOps

from ..compose.images import MediaImage
from ..errors import IssueError

__all__ = ["served_bytes"]

_JPEG = {"quality": 85, "optimize": True, "progressive": True}


def _draft(image: Image.Image, target: MediaImage) -> None:
    """A JPEG much larger than needed is decoded at a fraction of its size (its DCT scaling),
    which bounds the memory a 48-megapixel photo takes; it is resized exactly afterwards."""
    if image.format != "JPEG":
        return
    width, height = image.size
    if image.getexif().get(0x0112) in (5, 6, 7, 8):  # turned a quarter: the served width is its height
        image.draft("RGB", (math.ceil(width * target.width / height), target.width))
    else:
        image.draft("RGB", (target.width, math.ceil(height * target.width / width)))


def _encode(image: Image.Image, kind: str, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if kind == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", **_JPEG, **extra)
    elif kind == "PNG":
        image.save(out, format="PNG", optimize=True, **extra)
    else:
        image.save(out, format=kind)
    return out.getvalue()


def served_bytes(target: MediaImage) -> bytes:
    """The file the archive serves as ``/media/<target.name>``."""
    data = target.source.read_bytes()
    if target.animated and target.format == "GIF":
        return data
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                _draft(opened, target)
                icc = opened.info.get("icc_profile")
                upright = ImageOps.exif_transpose(opened)
                if upright.size != (target.width, target.height):
                    upright = upright.resize((target.width, target.height), Image.Resampling.LANCZOS)
                return _encode(upright, target.format, icc if isinstance(icc, bytes) else None)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise IssueError(
                f"image {target.src!r} cannot be decoded (damaged or truncated?)", file=target.source
            ) from None
