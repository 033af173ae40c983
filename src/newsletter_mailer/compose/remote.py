"""A remote image downloaded once (``[publish] copy_remote_images = true``), so the archive
outlives the host it came from: kept in the workspace's state folder by the URL's hash, and
never fetched again for that URL."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import httpx

from ..config import Settings
from ..errors import IssueError
from ..workspace import private_dir
from .issue import Issue

__all__ = ["TIMEOUT", "cache_path", "fetch_once"]

TIMEOUT = 30.0  # seconds for the whole download


def cache_path(settings: Settings, url: str) -> Path:
    return settings.state_dir / "remote-images" / hashlib.sha256(url.encode()).hexdigest()


def _download(url: str, limit: int) -> bytes:
    """The body of a 200 answer, refused past ``limit`` bytes without reading the rest."""
    with (
        httpx.Client(timeout=TIMEOUT, follow_redirects=True, max_redirects=5) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            raise ValueError(f"the server answered {response.status_code} {response.reason_phrase}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ValueError(f"it is {int(declared) / 1024 / 1024:.1f} MB; at most {limit // 1024 // 1024} MB")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ValueError(f"it is over {limit // 1024 // 1024} MB")
            chunks.append(chunk)
        return b"".join(chunks)


def fetch_once(url: str, settings: Settings, issue: Issue, line: int) -> Path:
    """The cached copy of ``url``, downloaded on first use; IssueError at the image's line when
    it cannot be had."""
    from .images import MAX_IMAGE_BYTES

    path = cache_path(settings, url)
    if path.is_file():
        return path
    try:
        data = _download(url, MAX_IMAGE_BYTES)
    except (httpx.HTTPError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise IssueError(f"image {url} could not be copied: {reason}", file=issue.path, line=line) from None
    private_dir(settings.state_dir)
    path.parent.mkdir(exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".download-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path
