"""Run a whole send: issue -> rendered message -> per-recipient envelope -> transport -> journal.

The only module that knows the whole flow. Recipients are claimed in the journal before they are
handed to the server and marked after, so a crash resends at most the ``concurrency`` messages
in flight; temporary failures are retried with exponential backoff and jitter; hard bounces go
on the suppression list; too many consecutive failures pause the run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from email_validator import EmailNotValidError

from ..audience.links import signer_for
from ..audience.subscribers import ListReport, Subscriber, normalise_address, read_subscribers
from ..audience.suppressions import SuppressionList
from ..compose.dkim import dkim_signer
from ..compose.envelope import MessageTemplate
from ..compose.issue import read_issue
from ..compose.render import RenderedIssue, render_issue
from ..config import Settings, SMTPSettings
from ..errors import ConfigError, MergeFieldError, SendPaused, SMTPStartError
from ..store.database import connect, send_lock
from ..store.journal import Delivery, SQLiteJournal
from .outbox import LocalOutbox
from .ratelimit import RateLimiter
from .transport import Kind, Result, SMTPTransport, Transport

TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class Preflight:
    issue: str
    subscribers: Path
    to_send: int
    invalid: int
    duplicates: int
    suppressed: int
    already_sent: int
    failed: int
    removed: int
    resumed_in_flight: int
    problems: tuple[str, ...]
    more_problems: int


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    retried: int = 0
    possibly_duplicated: int = 0
    left_pending: int = 0
    elapsed: float = 0.0
    paused: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)


class Progress(Protocol):
    def started(self, total: int) -> None: ...
    def finished_one(self, address: str, result: Result | None) -> None:
        """A recipient reached a final state: sent, failed, or (result None) suppressed."""

    def retrying(self, address: str, result: Result, delay: float) -> None: ...


class NoProgress:
    def started(self, total: int) -> None:
        pass

    def finished_one(self, address: str, result: Result | None) -> None:
        pass

    def retrying(self, address: str, result: Result, delay: float) -> None:
        pass


@dataclass(frozen=True)
class Route:
    """Where messages go: the configured relay, or the built-in outbox."""

    smtp: SMTPSettings
    outbox: Path | None


@contextmanager
def delivery_route(settings: Settings) -> Iterator[Route]:
    """The configured relay, or a loopback SMTP server filing into ``outbox/``."""
    if settings.smtp.host:
        yield Route(settings.smtp, None)
        return
    path = settings.workspace / "outbox"
    with LocalOutbox(path) as outbox:
        smtp = replace(settings.smtp, host="127.0.0.1", port=outbox.port, security="none", username="")
        yield Route(smtp, path)


def backoff(attempt: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (half to all of the exponential step)."""
    step: float = min(cap, base * (2.0 ** max(attempt - 1, 0)))
    return step * (0.5 + random.random() / 2)


class Campaign:
    """One issue's dispatch to its list. Open with ``open_campaign``, which holds the send lock."""

    def __init__(
        self, settings: Settings, rendered: RenderedIssue, journal: SQLiteJournal, preflight: Preflight
    ) -> None:
        self.settings = settings
        self.rendered = rendered
        self.journal = journal
        self.suppressions = SuppressionList(journal.db)
        self.preflight = preflight
        self.issue = rendered.issue.key

    def template(self) -> MessageTemplate:
        return MessageTemplate(self.rendered, self.settings, signer_for(self.settings), dkim=dkim_signer(self.settings))

    def run(self, progress: Progress | None = None, transport: Transport | None = None) -> Summary:
        progress = progress or NoProgress()
        if transport is not None:
            return asyncio.run(self._run(transport, self.settings.smtp, progress))
        with delivery_route(self.settings) as route:
            return asyncio.run(self._run(SMTPTransport(route.smtp), route.smtp, progress))

    async def _run(self, transport: Transport, smtp: SMTPSettings, progress: Progress) -> Summary:
        await transport.probe()  # a refused connection or login stops here, before any claim
        template = self.template()
        journal = self.journal
        summary = Summary()
        limiter = RateLimiter(smtp.rate, smtp.per_hour)
        pending = journal.pending(self.issue)
        retries: list[tuple[float, int, Delivery]] = []
        sequence = itertools.count()
        first_try: dict[int, float] = {}
        state = {"consecutive": 0}
        stop = asyncio.Event()
        fatal: list[BaseException] = []
        counts = journal.counts(self.issue)
        progress.started(counts["pending"])
        started = time.monotonic()

        async def next_job() -> Delivery | None:
            while not stop.is_set():
                now = time.monotonic()
                if retries and retries[0][0] <= now:
                    return heapq.heappop(retries)[2]
                job = next(pending, None)
                if job is not None:
                    return job
                if not retries:
                    return None
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, retries[0][0] - now))
            return None

        def settle(job: Delivery, message_id: str, result: Result) -> float:
            """Record a result; returns how long this connection should back off."""
            if result.kind is Kind.SENT:
                journal.mark_sent(job, message_id, str(result))
                summary.sent += 1
                if job.resent:
                    summary.possibly_duplicated += 1
                state["consecutive"] = 0
                progress.finished_one(job.address, result)
                return 0.0
            state["consecutive"] += 1
            attempts = job.attempts + 1
            if result.kind is Kind.TEMPORARY:
                elapsed = time.monotonic() - first_try[job.id]  # set when the worker first claimed it
                if attempts < smtp.max_attempts and elapsed < smtp.retry_max_seconds:
                    delay = backoff(attempts, smtp.retry_delay)
                    journal.mark_deferred(job, str(result), uncertain=result.uncertain)
                    heapq.heappush(
                        retries,
                        (
                            time.monotonic() + delay,
                            next(sequence),
                            replace(job, attempts=attempts, resent=job.resent or result.uncertain),
                        ),
                    )
                    summary.retried += 1
                    progress.retrying(job.address, result, delay)
                    return delay if result.reset_connection else 0.0
                reply = f"{result} (gave up after {attempts} attempts)"
            else:
                reply = str(result)
            journal.mark_failed(job, reply)
            if result.hard_bounce:
                self.suppressions.add(job.address, "bounced", f"{self.issue}: {result}")
            summary.failed += 1
            summary.failures.append((job.address, reply))
            progress.finished_one(job.address, result)
            return backoff(1, smtp.retry_delay) if result.reset_connection else 0.0

        async def worker() -> None:
            connection = transport.connection()
            try:
                while (job := await next_job()) is not None:
                    await limiter.acquire()
                    if stop.is_set():
                        heapq.heappush(retries, (0.0, next(sequence), job))
                        break
                    if not journal.claim(job):
                        summary.suppressed += 1
                        progress.finished_one(job.address, None)
                        continue
                    first_try.setdefault(job.id, time.monotonic())
                    try:
                        envelope = template.envelope(job.subscriber())
                    except MergeFieldError as exc:  # a row the pre-send check did not pass (--force)
                        reply = f"the message cannot be filled in: {exc}"
                        journal.mark_failed(job, reply)
                        summary.failed += 1
                        summary.failures.append((job.address, reply))
                        progress.finished_one(job.address, Result(Kind.PERMANENT, 0, reply))
                        continue
                    try:
                        result = await connection.send(envelope)
                    except SMTPStartError as exc:  # the login was refused: nothing was handed over
                        journal.release(job)
                        fatal.append(exc)
                        stop.set()
                        break
                    # Anything else (Ctrl+C, a crash) leaves the row "sending": the server may have the
                    # message, so the next run resends it and counts it as possibly duplicated.
                    pause = settle(job, envelope.message_id, result)
                    if state["consecutive"] >= smtp.max_consecutive_failures:
                        summary.paused = f"{state['consecutive']} deliveries in a row failed (last: {result}); paused"
                        stop.set()
                    elif pause:
                        await asyncio.sleep(pause)
            finally:
                await connection.close()

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, smtp.concurrency))))
        finally:
            summary.elapsed = time.monotonic() - started
            summary.left_pending = journal.counts(self.issue)["pending"]
        if fatal:
            raise fatal[0]
        if summary.paused:
            raise SendPaused(
                f"{summary.paused}. {summary.sent} sent this run, {summary.left_pending} still "
                "to send: fix the cause, then run the same `newsletter send` again to resume"
            )
        return summary


def _preflight(journal: SQLiteJournal, issue: str, subscribers: Path, retry_failed: bool) -> Preflight:
    report = ListReport(subscribers)
    recovered = journal.recover_in_flight(issue)
    journal.add_recipients(issue, read_subscribers(subscribers, report))
    if retry_failed:
        journal.retry_failed(issue)
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
    )


@contextmanager
def open_campaign(
    issue_path: Path, settings: Settings, subscribers: Path | None = None, retry_failed: bool = False
) -> Iterator[Campaign]:
    """Render the issue, take the send lock, load the list into the journal."""
    rendered = render_issue(read_issue(issue_path), settings)
    subscribers = subscribers or settings.path(settings.newsletter.subscribers)
    with ExitStack() as stack:
        stack.enter_context(send_lock(settings.state_dir, rendered.issue.key))
        journal = SQLiteJournal.open(settings.database_path)
        stack.callback(journal.close)
        preflight = _preflight(journal, rendered.issue.key, subscribers, retry_failed)
        yield Campaign(settings, rendered, journal, preflight)


@dataclass(frozen=True)
class DryRun:
    built: int
    octets: int
    invalid: int
    duplicates: int
    suppressed: int
    already_sent: int
    problems: tuple[str, ...]


def dry_run(issue_path: Path, settings: Settings, subscribers: Path | None = None) -> DryRun:
    """Build every message that a send would, and send none; nothing is written to the journal."""
    rendered = render_issue(read_issue(issue_path), settings)
    subscribers = subscribers or settings.path(settings.newsletter.subscribers)
    template = MessageTemplate(rendered, settings, signer_for(settings), dkim=dkim_signer(settings))
    db = connect(settings.database_path)
    journal, suppressions = SQLiteJournal(db), SuppressionList(db)
    report = ListReport(subscribers)
    built = octets = suppressed = already = 0
    try:
        for subscriber in read_subscribers(subscribers, report):
            if subscriber.email in suppressions:
                suppressed += 1
                continue
            if journal.state_of(rendered.issue.key, subscriber.email) == "sent":
                already += 1
                continue
            try:
                octets += len(template.envelope(subscriber).data)
            except MergeFieldError as exc:  # reported as a skipped row; a send marks it failed
                report.add_problem(subscriber.line, str(exc))
                continue
            built += 1
    finally:
        db.close()
    return DryRun(built, octets, report.invalid, report.duplicates, suppressed, already, tuple(report.problems))


@dataclass(frozen=True)
class TestSend:
    recipients: tuple[str, ...]
    results: tuple[tuple[str, Result], ...]
    outbox: Path | None


def send_test(
    issue_path: Path, settings: Settings, to: tuple[str, ...] = (), transport: Transport | None = None
) -> TestSend:
    """Send the issue to the test recipients (or any addresses given), subject prefixed [TEST].

    Nothing is recorded in the journal; each copy gets a fresh Message-ID so mail clients
    show every test instead of folding them together.
    """
    addresses = to or settings.newsletter.test_recipients
    if not addresses:
        raise ConfigError(
            "no test recipients: give --to ADDRESS or set [newsletter] test_recipients", file=settings.config_path
        )
    recipients = []
    for raw in addresses:
        try:
            recipients.append(normalise_address(raw))
        except EmailNotValidError as exc:
            raise ConfigError(
                f"test recipient {raw!r} is not a valid address: {exc}", file=settings.config_path
            ) from None
    rendered = render_issue(read_issue(issue_path), settings)
    template = MessageTemplate(
        rendered,
        settings,
        signer_for(settings),
        subject_prefix=TEST_PREFIX,
        unique_ids=True,
        dkim=dkim_signer(settings),
    )

    async def deliver(chosen: Transport) -> list[tuple[str, Result]]:
        await chosen.probe()
        connection = chosen.connection()
        out = []
        try:
            for address in recipients:
                envelope = template.envelope(Subscriber(email=address, name="Test Reader"))
                result = await connection.send(envelope)
                if result.kind is Kind.TEMPORARY:
                    await asyncio.sleep(1.0)
                    result = await connection.send(envelope)
                out.append((address, result))
        finally:
            await connection.close()
        return out

    if transport is not None:
        return TestSend(tuple(recipients), tuple(asyncio.run(deliver(transport))), None)
    with delivery_route(settings) as route:
        results = asyncio.run(deliver(SMTPTransport(route.smtp)))
        return TestSend(tuple(recipients), tuple(results), route.outbox)
