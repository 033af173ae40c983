"""A provider's bounce and complaint events (verified by web/webhooks.py) recorded in the bounce
log by the same rules as a report read by ``newsletter bounces``."""

from __future__ import annotations

from collections import Counter

from ..audience.provenance import webhook_subject
from ..audience.webhook_events import WebhookEvent
from ..config import Settings
from .bounces import bounce_log

__all__ = ["record_events"]


def record_events(settings: Settings, events: list[WebhookEvent]) -> dict[str, int]:
    """Record each event the bounce rules know in the bounce log; counts by what was done."""
    done: Counter[str] = Counter()
    with bounce_log(settings) as reports:
        for event in events:
            report = event.report()
            if report is None:
                done[event.kind.value] += 1
                continue
            subject = webhook_subject(event.message_ids, report, reports.store)
            outcome = reports.record(event.source, event.fingerprint, report, subject)
            done[outcome.action.value] += 1
    return dict(done)
