"""Where a send's messages go: the configured relay, or a loopback SMTP server filing into
``outbox/`` when no relay is configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import Settings, SMTPSettings
from .outbox import LocalOutbox

__all__ = ["Route", "delivery_route"]


@dataclass(frozen=True)
class Route:
    """Where messages go: the configured relay, or the built-in outbox."""

    smtp: SMTPSettings
    outbox: Path | None


@contextmanager
def delivery_route(settings: Settings) -> Iterator[Route]:
    """The configured relay (or provider API), or a loopback SMTP server filing into ``outbox/``."""
    if settings.smtp.host or settings.transport.kind != "smtp":
        yield Route(settings.smtp, None)
        return
    path = settings.workspace / "outbox"
    with LocalOutbox(path) as outbox:
        smtp = replace(settings.smtp, host="127.0.0.1", port=outbox.port, security="none", username="")
        yield Route(smtp, path)
