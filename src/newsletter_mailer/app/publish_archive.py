"""Publishing the web archive, as ``newsletter publish`` and a send that sent something run it:
the journal says which issues went out and when (read here, the store closed again), publish/
builds and writes the site from that."""

from __future__ import annotations

from pathlib import Path

from ..compose.issue import Issue
from ..config import Settings
from ..errors import NewsletterError
from ..publish.site import PublishResult, before_send, publish_site
from .stores import existing_store

__all__ = ["publish_after_send", "publish_archive", "stage_images"]


def publish_archive(settings: Settings, out_dir: Path | None = None) -> PublishResult:
    """Every sent issue as a page, the index, the feed and calendars, into ``out_dir``."""
    with existing_store(settings) as store:
        sent = store.issues_sent() if store else {}
    return publish_site(settings, out_dir, sent)


def stage_images(settings: Settings, issue: Issue) -> int:
    """The issue's own images on the site before the first message that shows them is sent;
    how many files were new."""
    return before_send(settings, issue)


def publish_after_send(settings: Settings, sent: int) -> tuple[PublishResult | None, str]:
    """The archive again after a send that sent something (unless ``[publish] enabled = false``):
    the result, or why it was not written. The send stands whatever happens here."""
    if not settings.publish.enabled or sent == 0:
        return None, ""
    try:
        return publish_archive(settings), ""
    except (NewsletterError, OSError) as exc:
        return None, str(exc)
