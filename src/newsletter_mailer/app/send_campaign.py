"""Sending an issue, as ``newsletter send`` runs it: the issue rendered once, the pre-send check
on that rendering, then a test copy, a dry run or the campaign (pre-flight: the send lock and the
list loaded into the journal; confirmation; the run, in one process or several; joining a send
that runs; resuming one that stopped; what a Ctrl+C left behind).

The command line supplies a ``SendUI`` that shows findings, the pre-flight and progress and
asks for confirmation; everything it decides lives here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ..audience.choices import ReaderChoices, reader_defaults
from ..audience.preference_log import reader_choices
from ..audience.segments import Condition, parse_condition
from ..audience.signup import Tally, merge_lists
from ..audience.signup_log import confirmed_signups
from ..audience.subscribers import DERIVED_COLUMNS, ListReport, Subscriber, list_columns, read_subscribers
from ..compose.check import (
    Finding,
    RowFill,
    check_issue,
    check_message,
    check_rendered,
    has_errors,
)
from ..compose.issue import read_issue
from ..compose.render import RenderedIssue, render_issue
from ..compose.variants import Segmenter, Variant
from ..config import Settings, derived_columns
from ..errors import (
    AlreadySending,
    CheckFailed,
    ConditionError,
    IssueError,
    IssueNotFound,
    SendDeclined,
    SendInterrupted,
    StateLost,
    SubscriberListError,
    UserInputError,
)
from ..publish.site import PublishResult
from ..send import trial
from ..send.campaign import Campaign, Preflight, content_hash
from ..send.engine import Progress, Summary, end_leases_of_the_gone
from ..send.pool import run_workers
from ..send.providers import describe
from ..send.trial import DryRun, TestSend
from ..store.base import Store
from ..store.database import sent_issues
from .publish_archive import publish_after_send, stage_images
from .reader import find_reader
from .stores import opened_store

__all__ = [
    "CampaignOutcome",
    "Confirmation",
    "SendRequest",
    "SendResult",
    "SendUI",
    "destination",
    "join_campaign",
    "open_campaign",
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
    where: str = ""  # send only to the readers this condition matches; "" for the whole list
    as_reader: str = ""  # with test: send the copy this reader (in the list or a signup) would get


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
    staged: int = 0  # the issue's images newly copied into the web archive before the send
    published: PublishResult | None = None  # the web archive written after the send
    publish_error: str = ""  # why the web archive was not written after the send (it stands)


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
    """Render the issue once, check that rendering, then send a test, build a dry run, or send to
    the list."""
    settings = with_overrides(settings, request.concurrency, request.rate)
    if request.test:
        trial.test_recipients(settings, request.to)  # a mistyped address fails before anything else
    elif request.subscribers is not None and not request.subscribers.is_file():
        what = "is a folder, not a CSV file" if request.subscribers.is_dir() else "subscriber list not found"
        raise SubscriberListError(what, file=request.subscribers)  # not a finding --force could pass
    where = _where(request, settings)
    trying = request.test or request.dry_run
    # A campaign's list is checked as the pre-flight loads it: the CSV is read once.
    rendered, findings = rendered_and_checked(request.issue, settings, request.subscribers, with_list=trying)
    if rendered is None or trying:
        _refuse_on_errors(ui, findings, request.force and rendered is not None)
    if rendered is None:  # nothing to send, --force or not
        raise CheckFailed("the issue cannot be rendered (the errors are listed above); fix them and send again")
    # The issue's own images are on the site before any message links them (a test copy too).
    staged = 0 if request.dry_run else stage_images(settings, rendered.issue)
    if request.test:
        reader = find_reader(settings, request.subscribers, request.as_reader) if request.as_reader else None
        return replace(trial.send_test(rendered, settings, request.to, reader=reader), staged=staged)
    if request.dry_run:
        return trial.dry_run(rendered, settings, request.subscribers)
    outcome = send_campaign(request, settings, ui, rendered, findings, where)
    published, error = publish_after_send(settings, outcome.summary.sent if outcome.summary else 0)
    return replace(outcome, staged=staged, published=published, publish_error=error)


def _where(request: SendRequest, settings: Settings) -> Condition | None:
    """The --where condition, read and held against the list's columns before anything is loaded."""
    if not request.where:
        return None
    try:
        where = parse_condition(request.where)
    except ConditionError as exc:
        raise UserInputError(f"--where: {exc.message}") from None
    path = request.subscribers or settings.path(settings.newsletter.subscribers)
    columns = list_columns(path)
    unknown = sorted(where.columns - set(columns) - DERIVED_COLUMNS - derived_columns(settings))
    if unknown:
        raise UserInputError(
            f"--where: {', '.join(map(repr, unknown))} is no column of {path}; its columns: {', '.join(columns)}"
        )
    return where


def _refuse_on_errors(ui: SendUI, findings: list[Finding], force: bool) -> None:
    """Show the check's findings; refuse on an error unless --force."""
    ui.findings(findings, forced=force and has_errors(findings))
    if has_errors(findings) and not force:
        raise CheckFailed("the pre-send check found errors (listed above); fix them, or send with --force")


def rendered_and_checked(
    path: Path, settings: Settings, subscribers: Path | None, *, with_list: bool = True
) -> tuple[RenderedIssue | None, list[Finding]]:
    """The issue rendered once and the check's findings on that rendering (``with_list``: the
    list's too); an issue that cannot be rendered gives no rendering, and the check says every
    problem in it."""
    try:
        rendered = render_issue(read_issue(path), settings)
    except IssueNotFound:
        raise
    except IssueError:
        return None, check_issue(path, settings, subscribers)
    if with_list:
        return rendered, check_rendered(rendered, settings, subscribers)
    return rendered, check_message(rendered, settings)


def send_campaign(
    request: SendRequest,
    settings: Settings,
    ui: SendUI,
    rendered: RenderedIssue,
    findings: list[Finding],
    where: Condition | None = None,
) -> CampaignOutcome:
    """Pre-flight (the list checked as it loads), confirmation, dispatch; Ctrl+C becomes a
    SendInterrupted that says what is where."""
    outbox = None if settings.smtp.host or settings.transport.kind != "smtp" else outbox_path(settings)
    path = request.subscribers or settings.path(settings.newsletter.subscribers)
    fill = RowFill(rendered, path, reader_defaults(settings))
    opened = (
        join_campaign(request.issue, settings, rendered=rendered)
        if request.join
        else open_campaign(
            request.issue,
            settings,
            request.subscribers,
            request.retry_failed,
            request.new_database,
            rendered=rendered,
            fill=fill,
            where=where,
        )
    )
    with opened as campaign:
        _checked(ui, campaign, [*findings, *fill.findings()], request.force)
        preflight = campaign.preflight
        if not request.join:
            ui.preflight(preflight)
        if preflight.to_send == 0:
            return CampaignOutcome(preflight, None, outbox)
        from ..compose.dnscheck import preflight_findings  # dnspython only where a send asks DNS

        ui.findings(preflight_findings(settings), forced=False)  # what receivers find in DNS (docs/dns.md)
        confirmation = Confirmation(
            campaign.issue,
            campaign.rendered.issue.subject,
            destination(settings),
            preflight.to_send,
            outbox,
            joining=request.join,
            workers=request.workers,
        )
        _confirm(ui, confirmation, campaign)
        if not request.join:
            campaign.journal.record_run(campaign.issue, request.where)
        try:
            summary = run_workers(campaign, request.workers, ui)
        except KeyboardInterrupt:
            raise _interrupted(campaign.journal.counts(campaign.issue), preflight) from None
        finally:
            ui.stop()
    return CampaignOutcome(preflight, summary, outbox)


def _checked(ui: SendUI, campaign: Campaign, findings: list[Finding], force: bool) -> None:
    """The check's findings, the list's among them; on an error (without --force) nothing is sent,
    and an issue never sent before keeps no rows."""
    try:
        _refuse_on_errors(ui, findings, force)
    except CheckFailed:
        if campaign.preflight.first_run:
            campaign.journal.discard_unsent(campaign.issue)
        raise


def _confirm(ui: SendUI, confirmation: Confirmation, campaign: Campaign) -> None:
    """Ask; a "no" or a Ctrl+C leaves the journal as it was before this send's pre-flight (an issue
    never sent before: no rows at all), so ``status`` does not show a send that never began."""
    try:
        ui.confirm(confirmation)
    except BaseException as exc:  # a no, Ctrl+C, or no terminal to ask on
        if campaign.preflight.first_run:
            campaign.journal.discard_unsent(campaign.issue)
        if isinstance(exc, KeyboardInterrupt):
            raise SendDeclined(interrupted=True) from None
        raise


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


@dataclass
class _Loading:
    """What a pre-flight works out as the list passes into the journal: whom the run's --where
    leaves out, whom their pause holds back, and how many of those it sends to fall into each
    variant."""

    segmenter: Segmenter
    where: Condition | None = None
    choices: ReaderChoices | None = None  # the readers' own choices ([preferences]): topics, pauses
    variants: Counter[Variant] = field(default_factory=Counter)
    left_out: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)

    def watch(self, readers: Iterable[Subscriber]) -> Iterator[Subscriber]:
        for reader in readers:
            if self.choices is not None:  # each reader's topics cell, before any condition reads it
                reader = self.choices.reader(reader)
            if self.choices is not None and self.choices.paused(reader.email):
                self.paused.append(reader.email)  # listed, and not sent until the pause ends
            elif self.where is not None and not self.where(reader.merge_values()):
                self.left_out.append(reader.email)
            yield reader

    def count_variants(self, journal: Store, issue: str) -> None:
        """How many of the readers this run sends to (pending, not suppressed: the pre-flight's
        "to send now") fall into each variant, from their rows as the journal holds them."""
        if self.segmenter.parts:
            for address, name, fields in journal.sendable(issue):
                self.variants[self.segmenter.variant_of(Subscriber(address, name, fields).merge_values())] += 1


def _preflight(
    journal: Store,
    issue: str,
    subscribers: Path,
    retry_failed: bool,
    fill: RowFill | None,
    first_run: bool,
    loading: _Loading,
) -> Preflight:
    report = ListReport(subscribers)
    end_leases_of_the_gone(journal, issue)
    recovered = journal.recover_in_flight(issue)
    tally = Tally()  # the list at send time: the CSV plus confirmed signups
    signups = confirmed_signups(journal)
    rows = read_subscribers(subscribers, report)
    readers = merge_lists(fill.watch(rows, report) if fill else rows, signups, tally)
    readers = fill.readers(readers) if fill else readers  # each reader's language, signups' too
    journal.add_recipients(issue, loading.watch(readers))
    if retry_failed:
        journal.retry_failed(issue)
    held = journal.hold(issue, loading.left_out) if loading.where is not None else 0
    paused = journal.pause(issue, loading.paused) if loading.paused else 0
    loading.count_variants(journal, issue)
    counts = journal.counts(issue)
    suppressed = journal.pending_suppressed(issue)
    return Preflight(
        issue=issue,
        subscribers=subscribers,
        to_send=counts["pending"] - suppressed,
        invalid=report.invalid,
        duplicates=report.duplicates,
        suppressed=suppressed + counts["suppressed"],
        already_sent=counts["sent"],
        failed=counts["failed"],
        removed=counts["removed"],
        resumed_in_flight=recovered,
        problems=tuple(report.problems),
        more_problems=report.more_problems,
        from_csv=tally.from_csv,
        from_signups=tally.from_signups,
        first_run=first_run,
        held=held,
        where=loading.where.source if loading.where is not None else "",
        paused=paused,
    )


@contextmanager
def open_campaign(
    issue_path: Path,
    settings: Settings,
    subscribers: Path | None = None,
    retry_failed: bool = False,
    new_database: bool = False,
    *,
    rendered: RenderedIssue | None = None,
    fill: RowFill | None = None,
    where: Condition | None = None,
) -> Iterator[Campaign]:
    """Take the send lock, load the list into the journal; ``rendered``: the issue as the check
    saw it (else the file is rendered here)."""
    rendered = rendered or render_issue(read_issue(issue_path), settings)
    subscribers = subscribers or settings.path(settings.newsletter.subscribers)
    with ExitStack() as stack:
        journal = stack.enter_context(opened_store(settings, new_database=new_database))
        stack.enter_context(journal.send_lock(rendered.issue.key))
        if not new_database:
            _refuse_a_store_that_forgot(journal, rendered.issue.key, settings)
        loading = _Loading(Segmenter(rendered.issue.conditional_parts()), where, reader_choices(settings, journal))
        preflight = _loaded(journal, rendered.issue.key, subscribers, retry_failed, fill, loading)
        tally = loading.variants
        journal.record_send(rendered.issue.key, content_hash(rendered, settings), replace=True)
        campaign = Campaign(settings, rendered, journal, preflight, issue_path)
        if tally:  # each variant rendered and encoded now, before the run, and counted
            campaign.preflight = replace(preflight, variants=tuple(campaign.template().counts(tally)))
        yield campaign


def _loaded(
    journal: Store,
    issue: str,
    subscribers: Path,
    retry_failed: bool,
    fill: RowFill | None,
    loading: _Loading,
) -> Preflight:
    """The pre-flight; a list that fails half-way through (a quote that swallows rows, bytes that
    are not UTF-8) leaves an issue never sent before with no rows, as a "no" at the prompt does."""
    first_run = not any(journal.counts(issue).values())
    try:
        return _preflight(journal, issue, subscribers, retry_failed, fill, first_run, loading)
    except BaseException:
        if first_run:
            with suppress(Exception):  # the error that stopped the pre-flight is the one to report
                journal.discard_unsent(issue)
        raise


def _refuse_a_store_that_forgot(journal: Store, issue: str, settings: Settings) -> None:
    """This workspace has sent the issue (``.newsletter/sent-issues``), yet the store has no row of
    it: a new or wrong store URL. Sending would mail everyone again and ignore every unsubscribe."""
    if issue in sent_issues(settings.state_dir) and not any(journal.counts(issue).values()):
        raise StateLost(
            f"this workspace has sent {issue}, but the store {journal.where} has no record of it: is the "
            "store URL the one it was sent with? Only if that record is truly gone, run `newsletter send "
            "--new-database` (every subscriber may be mailed again)"
        )


@contextmanager
def join_campaign(issue_path: Path, settings: Settings, *, rendered: RenderedIssue | None = None) -> Iterator[Campaign]:
    """Join a send of the issue that is running (here or on another machine, on the same store):
    the same issue file is required, the list is the one the send loaded."""
    rendered = rendered or render_issue(read_issue(issue_path), settings)
    issue = rendered.issue.key
    with opened_store(settings) as journal:
        try:
            with journal.send_lock(issue):
                raise UserInputError(
                    f"no send of {issue} is running to join: start it with `newsletter send {issue_path}`",
                    file=issue_path,
                )
        except AlreadySending:
            pass  # a send is running: join it
        ours = content_hash(rendered, settings)
        if journal.record_send(issue, ours) != ours:
            raise UserInputError(
                f"not what the running send of {issue} is sending: the issue file, its templates, the "
                "settings that show in a message or the link secret (NEWSLETTER_SECRET) differ; join "
                "with the same file, settings and secret",
                file=issue_path,
            )
        counts = journal.counts(issue)
        preflight = Preflight(  # the list was loaded by the send that runs: only the journal's counts
            issue=issue,
            subscribers=Path(),
            to_send=counts["pending"],
            invalid=0,
            duplicates=0,
            suppressed=counts["suppressed"],
            already_sent=counts["sent"],
            failed=counts["failed"],
            removed=counts["removed"],
            resumed_in_flight=counts["sending"],
            problems=(),
            more_problems=0,
        )
        yield Campaign(settings, rendered, journal, preflight, issue_path)
