"""Several sender processes on one send (``newsletter send --workers N``): this process sends and
shows progress, and starts N-1 more on this machine that claim rows from the same store. Each
worker is on its own event loop and core; a worker that dies leaves its claimed rows, which the
others take over (counted as possibly duplicated) as soon as its process is seen gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path

from ..compose.issue import read_issue
from ..compose.render import RenderedIssue, render_issue
from ..config import Settings, SMTPSettings
from ..errors import IssueError, NewsletterError, StateLost
from ..store.factory import open_store
from .campaign import Campaign, Preflight, content_hash
from .engine import Progress, Summary, lost_database
from .providers import transport_for
from .route import delivery_route

__all__ = ["run_workers"]


@dataclass(frozen=True)
class _Job:
    """What a worker process is given (pickled: a rendered issue holds its Jinja environment, so
    each worker renders the file again and must get what the parent got)."""

    settings: Settings
    issue_path: Path
    content_hash: str
    preflight: Preflight
    smtp: SMTPSettings  # the relay, or the parent's outbox server on loopback


def _render(job: _Job) -> RenderedIssue:
    rendered = render_issue(read_issue(job.issue_path), job.settings)
    if content_hash(rendered, job.settings) != job.content_hash:
        raise IssueError(f"{job.issue_path} changed after the send started: this worker sends nothing")
    return rendered


def _start_deaf_to_ctrl_c(process: BaseProcess) -> None:
    """Start a worker that ignores Ctrl+C from its first instruction (the terminal sends SIGINT to
    the whole group; the parent handles it and stops the workers): a new interpreter keeps an
    ignored SIGINT ignored, so none dies with a traceback while it is still importing."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _work(job: _Job, pipe: Pipe) -> None:
    """A worker process: send until nothing is left, then report its summary (or what stopped it)."""
    # Everything a worker has to say goes through the pipe; a terminal its parent no longer holds
    # (the parent was killed) must not get a traceback from a late write.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        rendered = _render(job)
        with open_store(job.settings) as store:
            campaign = Campaign(job.settings, rendered, store, job.preflight)
            campaign.saves_lost_database = False  # the parent does, once every worker has ended
            summary = campaign.run(transport=transport_for(campaign.settings, job.smtp), smtp=job.smtp)
        _report(pipe, summary)
    except NewsletterError as exc:
        _report(pipe, str(exc))
    except Exception as exc:  # reported by the parent as this worker's end, in one line
        _report(pipe, f"{type(exc).__name__}: {exc}")


def _report(pipe: Pipe, outcome: Summary | str) -> None:
    """Tell the parent how this worker ended; a parent that died first hears nothing (the journal
    has every outcome)."""
    with suppress(OSError):
        pipe.send(outcome)
    pipe.close()


class _Worker:
    def __init__(self, process: BaseProcess, pipe: Pipe) -> None:
        self.process = process
        self.pipe = pipe

    def outcome(self) -> Summary | str:
        """The worker's summary, or why it has none, once it has ended."""
        self.process.join()
        if self.pipe.poll():
            try:
                received: Summary | str = self.pipe.recv()
                return received
            except EOFError:
                pass
        code = self.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        return (
            f"a worker (pid {self.process.pid}) {how}: the messages it had in flight were sent again by "
            "another worker and are counted as possibly duplicated"
        )

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


def run_workers(campaign: Campaign, workers: int, progress: Progress) -> Summary:
    """Send with ``workers`` processes in all: this one and ``workers - 1`` started here."""
    if workers <= 1 or campaign.issue_path is None:
        return campaign.run(progress)
    with delivery_route(campaign.settings) as route:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no loop, lock or socket shared
        job = _Job(
            campaign.settings,
            campaign.issue_path,
            content_hash(campaign.rendered, campaign.settings),
            campaign.preflight,
            route.smtp,
        )
        started: list[_Worker] = []
        try:
            for _ in range(workers - 1):
                parent_end, child_end = context.Pipe(duplex=False)
                process = context.Process(target=_work, args=(job, child_end), name="newsletter-worker")
                _start_deaf_to_ctrl_c(process)
                child_end.close()
                started.append(_Worker(process, parent_end))
            campaign.watch_others = True
            campaign.saves_lost_database = False  # below, once every worker has written its outcomes
            summary: Summary | None = None
            try:
                summary = campaign.run(progress, transport_for(campaign.settings, route.smtp), route.smtp)
            except StateLost as exc:  # the others find it too, and stop
                unsaved = exc
            outcomes = [worker.outcome() for worker in started]
            campaign.saves_lost_database = True
            lost = lost_database(campaign)
            if lost is not None:
                raise lost
            if summary is None:
                raise unsaved
            return _merge(summary, outcomes, campaign)
        finally:
            for worker in started:
                worker.stop()


def _merge(mine: Summary, others: list[Summary | str], campaign: Campaign) -> Summary:
    """One summary for the send: every worker's counts, and the journal's totals now."""
    for other in others:
        if isinstance(other, str):
            mine.notes.append(other)
            continue
        mine.sent += other.sent
        mine.failed += other.failed
        mine.suppressed += other.suppressed
        mine.set_aside += other.set_aside
        mine.retried += other.retried
        mine.possibly_duplicated += other.possibly_duplicated
        mine.failures.extend(other.failures)
        if other.paused:
            mine.notes.append(f"a worker paused: {other.paused}")
    counts = campaign.journal.counts(campaign.issue)
    mine.left_pending = counts["pending"]
    mine.possibly_duplicated_total = counts["resent"]
    return mine
