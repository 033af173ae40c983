"""Write a rendered issue to files a person can open: the HTML, the text part and a complete
.eml message, all filled in for the preview recipient."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from ..audience.links import signer_for
from ..audience.subscribers import Subscriber
from ..config import Settings
from ..errors import UserInputError
from .dkim import dkim_signer
from .editions import Editions, each_language
from .envelope import MessageTemplate, fill_preview, preview_subscriber
from .issue import read_issue
from .render import RenderedIssue, render_issue


@dataclass(frozen=True)
class RenderedFiles:
    html: Path
    text: Path
    eml: Path
    html_bytes: int


def write_files(
    rendered: RenderedIssue, settings: Settings, out_dir: Path, subscriber: Subscriber | None = None
) -> RenderedFiles:
    """The files for ``subscriber`` (from the list, with ``--as``), or for the preview recipient."""
    if subscriber is not None:  # their language and variant: the parts their row's cells match
        editions = each_language(
            Editions(rendered, settings, lambda r: MessageTemplate(r, settings, signer_for(settings)))
        ).for_reader(subscriber)
        rendered = editions.rendered(editions.variant_of(subscriber))
    try:
        return _write_files(rendered, settings, out_dir, subscriber or preview_subscriber(settings))
    except OSError as exc:
        hint = "; is the workspace read-only?" if exc.errno == errno.EROFS else " (choose another -o folder)"
        raise UserInputError(
            f"cannot write the rendered files there: {exc.strerror}{hint}", file=exc.filename or out_dir
        ) from None


def _write_files(rendered: RenderedIssue, settings: Settings, out_dir: Path, subscriber: Subscriber) -> RenderedFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = rendered.issue.key
    signer = signer_for(settings)
    html, text = fill_preview(rendered, settings, signer, subscriber)
    paths = RenderedFiles(
        out_dir / f"{stem}.html", out_dir / f"{stem}.txt", out_dir / f"{stem}.eml", len(html.encode("utf-8"))
    )
    paths.html.write_text(html, encoding="utf-8")
    paths.text.write_text(text, encoding="utf-8")
    envelope = MessageTemplate(rendered, settings, signer).envelope(subscriber)
    paths.eml.write_bytes(envelope.data)
    return paths


def message_for(issue_path: Path, settings: Settings, subscriber: Subscriber) -> bytes:
    """Exactly the message ``subscriber`` would get in a send (their row filled in, their variant
    and language, signed), sent nowhere."""
    rendered = render_issue(read_issue(issue_path), settings)
    signer, dkim = signer_for(settings), dkim_signer(settings)
    editions = Editions(rendered, settings, lambda r: MessageTemplate(r, settings, signer, dkim=dkim))
    return each_language(editions).envelope(subscriber).data
