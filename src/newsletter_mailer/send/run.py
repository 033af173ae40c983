"""One ``newsletter send`` as the command runs it: the pre-send check, then a test copy, a dry run
or the campaign (pre-flight, confirmation, dispatch, and what a Ctrl+C left behind).

The command line supplies a ``SendUI`` that shows findings, the pre-flight and progress and
asks for confirmation; everything it decides lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ..compose.check import Finding, has_errors, run_check
from ..config import Settings
from ..errors import CheckFailed, SendInterrupted
from . import dispatch
from .dispatch import DryRun, Preflight, Progress, Summary, TestSend
from .pool import run_workers
from .providers import describe

__all__ = [
    "CampaignOutcome",
    "Confirmation",
    "SendRequest",
    "SendResult",
    "SendUI",
    "destination",
    "send_issue",
]


@dataclass(frozen=True)
class SendRequest:
    issue: Path
    test: bool = False
    to: tuple[str, ...] = ()
    dry_run: bool = False
    subscribers: Path | None = None
    retry_failed: bool = False
    force: bool = False
    concurrency: int | None = None
    rate: float | None = None
    new_database: bool = False
    workers: int = 1  # sender processes on this machine
    join: bool = False  # help a send of this issue that is running (here or on another machine)


@dataclass(frozen=True)
class Confirmation:
    """What the editor is asked to confirm: the subject, where the mail goes, how many."""

    issue: str
    subject: str
    destination: str
    recipients: int
    outbox: Path | None  # set when the mail goes to the local outbox
    joining: bool = False  # helping a send that is running: ``recipients`` are those it has left
    workers: int = 1


@dataclass(frozen=True)
class CampaignOutcome:
    preflight: Preflight
    summary: Summary | None  # None: there was nothing to send
    outbox: Path | None  # the local outbox the messages went to, when no relay is configured


SendResult = TestSend | DryRun | CampaignOutcome


class SendUI(Progress, Protocol):
    def findings(self, findings: Sequence[Finding], forced: bool) -> None:
        """The pre-send check's findings; ``forced``: there are errors and --force sends anyway."""

    def preflight(self, preflight: Preflight) -> None: ...

    def confirm(self, confirmation: Confirmation) -> None:
        """Return to send; raise to stop before anything is sent."""

    def stop(self) -> None:
        """The dispatch ended (done, failed or interrupted): tear down any progress display."""


def destination(settings: Settings) -> str:
    """Where a send's messages go, in words."""
    if api := describe(settings):
        return api
    if settings.smtp.host:
        return f"the SMTP relay {settings.smtp.host}:{settings.smtp.effective_port}"
    return f"the local outbox {outbox_path(settings)}/ (no SMTP host is configured)"


def outbox_path(settings: Settings) -> Path:
    return settings.workspace / "outbox"


def with_overrides(settings: Settings, concurrency: int | None, rate: float | None) -> Settings:
    """The settings with the command line's --concurrency and --rate, where given."""
    if concurrency is None and rate is None:
        return settings
    smtp = replace(
        settings.smtp,
        concurrency=concurrency or settings.smtp.concurrency,
        rate=settings.smtp.rate if rate is None else rate,
    )
    return replace(settings, smtp=smtp)


def send_issue(request: SendRequest, settings: Settings, ui: SendUI) -> SendResult:
    """Check the issue, then send a test, build a dry run, or send to the list."""
    settings = with_overrides(settings, request.concurrency, request.rate)
    if request.test:
        dispatch.test_recipients(settings, request.to)  # a mistyped address fails before anything else
    findings = run_check(request.issue, settings, request.subscribers)
    ui.findings(findings, forced=request.force and has_errors(findings))
    if has_errors(findings) and not request.force:
        raise CheckFailed("the pre-send check found errors (listed above); fix them, or send with --force")
    if request.test:
        return dispatch.send_test(request.issue, settings, request.to)
    if request.dry_run:
        return dispatch.dry_run(request.issue, settings, request.subscribers)
    return send_campaign(request, settings, ui)


def send_campaign(request: SendRequest, settings: Settings, ui: SendUI) -> CampaignOutcome:
    """Pre-flight, confirmation, dispatch; Ctrl+C becomes a SendInterrupted that says what is where."""
    outbox = None if settings.smtp.host or settings.transport.kind != "smtp" else outbox_path(settings)
    opened = (
        dispatch.join_campaign(request.issue, settings)
        if request.join
        else dispatch.open_campaign(
            request.issue, settings, request.subscribers, request.retry_failed, request.new_database
        )
    )
    with opened as campaign:
        preflight = campaign.preflight
        if not request.join:
            ui.preflight(preflight)
        if preflight.to_send == 0:
            return CampaignOutcome(preflight, None, outbox)
        from ..compose.dnscheck import preflight_findings  # dnspython only where a send asks DNS

        ui.findings(preflight_findings(settings), forced=False)  # what receivers find in DNS (docs/dns.md)
        subject = campaign.rendered.issue.subject
        ui.confirm(
            Confirmation(
                campaign.issue,
                subject,
                destination(settings),
                preflight.to_send,
                outbox,
                joining=request.join,
                workers=request.workers,
            )
        )
        try:
            summary = run_workers(campaign, request.workers, ui)
        except KeyboardInterrupt:
            raise _interrupted(campaign.journal.counts(campaign.issue), preflight) from None
        finally:
            ui.stop()
    return CampaignOutcome(preflight, summary, outbox)


def _interrupted(counts: dict[str, int], preflight: Preflight) -> SendInterrupted:
    sent = counts["sent"] - preflight.already_sent
    in_flight, pending = counts["sending"], counts["pending"]
    message = f"interrupted: {sent} sent in this run ({counts['sent']} in all)"
    if in_flight:
        message += (
            f"; {in_flight} in flight, which the relay may or may not have: the next run sends "
            "them again and reports them as possibly duplicated"
        )
    message += f"; {pending} not sent yet"
    return SendInterrupted(message, sent=sent, in_flight=in_flight, pending=pending)
