"""The send engine: claim -> per-recipient bytes -> transport -> outcome, for one sender process.

Recipients are claimed in the journal before they are handed to the server and marked after, so a
crash resends at most the messages in flight; temporary failures are retried with exponential
backoff and jitter; hard bounces go on the suppression list; too many consecutive failures pause
the run. It never renders (the campaign hands it a rendered issue) and decides no policy.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..audience.subscribers import Subscriber, address_key
from ..config import SMTPSettings
from ..errors import MergeFieldError, SendPaused, SMTPStartError, StateLost, StoreError, StoreFull
from ..store.base import Outlook, Store
from ..store.journal import Delivery, Outcome
from ..store.offloop import Lane, Lanes, OffLoop
from .identity import gone_here
from .ratelimit import RateLimiter
from .transport import Connection, Kind, Result, Transport

if TYPE_CHECKING:
    from .campaign import Campaign

__all__ = [
    "DATABASE_CHECK_SECONDS",
    "GATHER_SECONDS",
    "PAUSES_CHECK_SECONDS",
    "Depth",
    "FailureStreak",
    "NoProgress",
    "Progress",
    "Summary",
    "backoff",
    "depth",
    "dispatch",
    "end_leases_of_the_gone",
    "lost_database",
]

DATABASE_CHECK_SECONDS = 3.0  # how often a run makes sure its database is still the file at its path
# Outcomes are committed at most this often (unless a batch has come in): at thousands of messages
# a second a commit then carries several, and the store's thread takes less CPU from the sender
# (SQLite, large issue: 0.33 -> 0.28 ms a message; docs/benchmarks.md).
GATHER_SECONDS = 0.002
# How often a run looks for readers who paused their mail on the preferences page since it
# started, and how far back each look reaches before the last one (a commit still under way, or
# the web server's clock a little behind this machine's: looking twice at a change costs nothing).
PAUSES_CHECK_SECONDS = 5.0
PAUSES_OVERLAP_SECONDS = 60.0


def lost_database(campaign: Campaign, sent: int | None = None) -> StateLost | None:
    """After the last outcome is written: None while the database is the file that was opened;
    else the run's error, its open copy written out (back at its path, or beside the file now
    there) unless the campaign leaves that to the first process of a send of several workers."""
    journal, path = campaign.journal, campaign.settings.database_path
    what = journal.lost()
    if not what:
        return None
    count = "" if sent is None else f" ({sent} sent this run)"
    stopped = f"the database {path} was {what} while this send ran, so it stopped{count}"
    if not campaign.saves_lost_database:
        return StateLost(f"{stopped}; the send's first process writes its record out")
    try:
        saved = journal.salvage_if_lost()
    except StoreError as exc:
        return StateLost(
            f"{stopped}, and its record could not be written out ({exc}): the next run cannot know whom "
            "this send reached"
        )
    if saved is None:  # put back meanwhile
        return None
    where = (
        "back where it was: run the same `newsletter send` again to resume"
        if saved == path
        else f"to {saved}: the file now at {path} is not the one this send opened; put the saved one "
        "in its place before sending again"
    )
    return StateLost(f"{stopped}; its record, with every unsubscribe it knew, was saved {where}")


@dataclass(frozen=True)
class Depth:
    """How far a sender runs ahead of its store, in batches of ``concurrency`` rows; ``ahead`` and
    ``unwritten`` are the crash bounds (docs/architecture-store.md, "Crash bounds")."""

    claim: int  # rows taken per claim
    ahead: int  # rows claimed and not yet handed over, with those of the claims under way
    unwritten: int  # outcomes handed to the writers and not yet committed


def depth(sessions: int) -> Depth:
    """A store of one session (SQLite) answers at once: a batch per claim, two ahead, two
    unwritten (commits GATHER_SECONDS apart carry several outcomes each). On a store of several
    (PostgreSQL, perhaps across a network) a sender keeps R x T rows claimed ahead and R x T
    outcomes on their way to go at R msg/s with the store T seconds away: seven batches each way
    keep half the direct rate at a 40 ms round trip, with claims of two batches so that the
    claims need no more sessions (docs/benchmarks.md)."""
    return Depth(claim=1, ahead=2, unwritten=2) if sessions <= 1 else Depth(claim=2, ahead=7, unwritten=7)


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    retried: int = 0
    possibly_duplicated: int = 0
    possibly_duplicated_total: int = 0  # this issue's, over every run so far (from the journal)
    set_aside: int = 0  # readers who paused their mail while this run went on, not sent to
    left_pending: int = 0
    elapsed: float = 0.0
    paused: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what other workers said as they ended


class Progress(Protocol):
    def started(self, total: int) -> None: ...
    def finished_one(self, address: str, result: Result | None) -> None:
        """A recipient reached a final state: sent, failed, or (result None) suppressed."""

    def retrying(self, address: str, result: Result, delay: float) -> None: ...
    def overall(self, done: int) -> None:
        """With several workers: how many recipients the whole send has finished."""


class NoProgress:
    def started(self, total: int) -> None:
        pass

    def finished_one(self, address: str, result: Result | None) -> None:
        pass

    def retrying(self, address: str, result: Result, delay: float) -> None:
        pass

    def overall(self, done: int) -> None:
        pass


def backoff(attempt: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (half to all of the exponential step)."""
    step: float = min(cap, base * (2.0 ** max(attempt - 1, 0)))
    return step * (0.5 + random.random() / 2)


class FailureStreak:
    """The failures since the last message that went through, and the bounces they would record.

    Bounces are held until a message goes through: a relay that refuses everyone (a policy, a
    misconfiguration) says nothing about the recipients, so nobody it refused is suppressed.
    """

    def __init__(self) -> None:
        self.count = self.permanent = 0
        self.replies: set[str] = set()
        self.bounces: list[tuple[str, Result]] = []

    def add(self, address: str, result: Result, *, final: bool) -> None:
        self.count += 1
        self.permanent += final
        # The same refusal often names its recipient: compare the replies without it.
        self.replies.add(str(result).replace(address, "<recipient>").lower())
        if final and result.hard_bounce:
            self.bounces.append((address, result))

    def end(self) -> list[tuple[str, Result]]:
        """A message went through: the failures were the recipients'; returns the held bounces."""
        bounces, self.bounces = self.bounces, []
        self.count = self.permanent = 0
        self.replies.clear()
        return bounces

    def reason(self, last: Result) -> str:
        if len(self.replies) == 1:
            said = f"the relay refused {self.count} recipients in a row with the same reply: {last}"
        else:
            said = f"{self.count} deliveries in a row failed (last: {last})"
        if self.bounces:
            said += f"; {len(self.bounces)} of them looked like bounces, and nobody was suppressed for it"
        if self.permanent:
            said += f"; {self.permanent} are marked failed (`--retry-failed` tries them again)"
        return said + "; paused"


class _Run:
    """One sender process's part of a campaign: its connections claim rows from the store (several
    processes and machines may share the send), hand each to the relay and record the outcome; a
    heartbeat keeps the leases on its claimed rows."""

    def __init__(self, campaign: Campaign, transport: Transport, smtp: SMTPSettings, progress: Progress) -> None:
        self.campaign = campaign
        self.journal = campaign.journal
        self.issue = campaign.issue
        self.transport = transport
        self.smtp = smtp
        self.progress = progress
        self.me = campaign.identity
        self.lease = campaign.settings.store.lease
        self.summary = Summary()
        # Every store call of the run goes to the store's own thread: the loop never waits on it.
        self.io = OffLoop()
        relay = f"{smtp.host}:{smtp.effective_port}"
        self.limiter = RateLimiter(self.journal, relay, smtp.rate, smtp.per_hour, run=self.io.run)
        self.streak = FailureStreak()
        self.last_failure: Result | None = None  # set when the streak paused the run
        self.next_database_check = 0.0
        self.paused_keys: set[str] = set()  # readers who paused their mail, as honour_pauses found them
        self.stop = asyncio.Event()
        self.changed = asyncio.Event()  # an outcome was recorded: rows waited for may be claimable
        self.fatal: BaseException | None = None
        self.template = campaign.by_language()
        self.journal.for_sending()
        # Rows are claimed as many at a time as there are connections, ahead of need: the next
        # batches are claimed while these are sent, several claims under way at once on a distant
        # store (each on a session of its own), so no connection waits for a round trip once the
        # send is under way. Outcomes go to the writers, whatever has come in per transaction,
        # several transactions under way at once. A crash may then leave rows claimed but not
        # handed over and outcomes not yet written, each at most what ``depth`` allows: the next
        # run resends those rows and counts them as possibly duplicated.
        self.batch = self.claim_size = max(1, smtp.concurrency)
        self.ahead = 2 * self.batch  # a batch more each time a connection waits for a claim, to most_ahead
        self.most_ahead = self.most_unwritten = self.batch
        self.may_grow = False
        self.drained = False  # the last claim found nothing due: claim one at a time, look before claiming
        self.looking: asyncio.Task[Outlook] | None = None
        self.total = 0  # rows pending when the run started
        self.claimed: deque[Delivery] = deque()
        self.claiming: set[asyncio.Task[int]] = set()
        self.refilled = asyncio.Event()  # a claim came in
        self.outcomes: list[Outcome] = []
        self.unwritten = 0  # outcomes handed to the writers and not yet committed
        self.write_failed = False
        self.arrived = asyncio.Event()  # an outcome waits to be written
        self.written = asyncio.Event()  # a batch of outcomes was written
        self.closing = False
        self.writer_done = False
        self.write_seconds = 0.0  # how long a commit of outcomes takes, smoothed
        self.last_write = 0.0  # when the last one was handed to a writer

    async def execute(self) -> Summary:
        # Claims on this session and more opened as needed; outcomes on sessions of their own.
        sessions = await self.io.run(self.journal.parallel_sessions)
        steps = depth(sessions)
        self.claim_size = steps.claim * self.batch
        self.most_ahead, self.most_unwritten = steps.ahead * self.batch, steps.unwritten * self.batch
        self.claims = Lanes(self.session, sessions, first=(self.journal, self.io))
        self.scribes = Lanes(self.session, sessions)
        try:
            return await self._execute()
        finally:
            await self.claims.close(_close)
            await self.scribes.close(_close)
            self.io.close()

    def session(self) -> Store:
        """Another session to the store, for claims or outcomes."""
        store = self.journal.another()
        store.for_sending()
        return store

    async def _execute(self) -> Summary:
        self.total = (await self.io.run(self.journal.counts, self.issue))["pending"]
        self.progress.started(self.total)
        started = time.monotonic()
        await self.io.run(self.journal.start_sending, self.issue)
        writer = asyncio.create_task(self.write_outcomes())
        workers = [asyncio.create_task(self.worker()) for _ in range(max(1, self.smtp.concurrency))]
        beat = asyncio.create_task(self.keep_alive())  # after the first claim: it does not wait on the beat
        pauses = asyncio.create_task(self.honour_pauses()) if self.campaign.settings.preferences.enabled else None
        try:
            # Every connection ends before the run does: one that fails stops the others, and its
            # error (the first) is the run's, instead of a task left failing after the loop closed.
            ended = await asyncio.gather(*workers, return_exceptions=True)
            failed = next((e for e in ended if isinstance(e, BaseException)), None)
            if failed is not None:
                raise failed
            if not self.stop.is_set():
                await self.suppress_bounces(self.streak.end())
        finally:
            for task in (beat, pauses):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            await self.settle(writer)
            await self.io.run(self.release_unsent)
            await self.io.run(self.journal.free_reserve)
            self.summary.elapsed = time.monotonic() - started
            lost = await self.io.run(lost_database, self.campaign, self.summary.sent)
            await self.finish_summary()
            if lost is not None:  # before any other error, Ctrl+C included: the record is elsewhere
                raise lost
        if self.fatal is not None:
            raise self.fatal
        if self.last_failure is not None:
            self.summary.paused = self.streak.reason(self.last_failure)
        if self.summary.paused:
            raise SendPaused(
                f"{self.summary.paused}. {self.summary.sent} sent this run, {self.summary.left_pending} still "
                "to send: fix the cause, then run the same `newsletter send` again to resume"
            )
        return self.summary

    def release_unsent(self) -> None:
        """Rows claimed but never handed over go back as they were (a stop, a pause, Ctrl+C), in
        one transaction."""
        with suppress(StoreError):  # then the next run counts them as possibly duplicated
            if self.claimed:
                self.journal.record_outcomes([Outcome(job, "released") for job in self.claimed])
            self.claimed.clear()

    async def settle(self, writer: asyncio.Task[None]) -> None:
        """The claims under way come in (their rows are released with the rest) and every outcome
        handed over is written before the run ends."""
        if self.claiming:
            await asyncio.wait(set(self.claiming))
        self.closing = True
        self.arrived.set()
        await asyncio.shield(writer)

    async def finish_summary(self) -> None:
        with suppress(StoreError):  # the error that stopped the run is the one to report
            await self.io.run(self.beat)
            counts = await self.io.run(self.journal.counts, self.issue)
            self.summary.left_pending = counts["pending"]
            self.summary.possibly_duplicated_total = counts["resent"]
            await self.show_overall(counts)  # the bar ends where the send did, not at the last poll

    def beat(self) -> None:
        me = self.me
        self.journal.heartbeat(self.issue, me.worker, me.host, me.pid, self.summary.sent, self.lease)

    async def show_overall(self, counts: dict[str, int] | None = None) -> None:
        """With other workers on the send, the progress of the whole send."""
        if self.campaign.watch_others:
            if counts is None:
                counts = await self.io.run(self.journal.counts, self.issue)
            self.progress.overall(self.total - counts["pending"] - counts["sending"])

    async def keep_alive(self) -> None:
        """Renew this worker's leases a few times per lease, and end those of workers known gone;
        with other workers, show the whole send's progress."""
        next_beat = 0.0
        try:
            while True:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + min(self.lease / 4, 5.0)
                    await self.io.run(self.beat)
                    if await self.io.run(end_leases_of_the_gone, self.journal, self.issue):
                        self.changed.set()
                await self.show_overall()
                await asyncio.sleep(0.5 if self.campaign.watch_others else next_beat - time.monotonic())
        except Exception as exc:  # leases no longer renewed: the run stops and says why
            self.fatal = self.fatal or exc
            self.stop.set()

    async def honour_pauses(self) -> None:
        """A reader who pauses their mail while the send runs is set aside as one paused before it
        was: their pending row, or the row claimed here and not yet handed over (what is already on
        its way goes). The first look takes every pause in force (a row paused at load stays as it
        is), then each looks at the changes since the last. A store that fails is said by the run."""
        since = 0.0
        while True:
            looked = time.time()
            with suppress(StoreError):
                addresses = await self.io.run(self.journal.readers_paused_since, since)
                since = looked - PAUSES_OVERLAP_SECONDS
                if addresses:
                    await self.set_aside(addresses)
            await asyncio.sleep(PAUSES_CHECK_SECONDS)

    async def set_aside(self, addresses: list[str]) -> None:
        """Pending rows first (a claim under way meanwhile is filtered as it comes in), then the
        rows claimed here and not handed over."""
        self.paused_keys.update(address_key(address) for address in addresses)
        self.count_set_aside(await self.io.run(self.journal.pause, self.issue, addresses))
        kept = self.unpaused(tuple(self.claimed))  # no await from here: no connection takes one meanwhile
        self.claimed.clear()
        self.claimed.extend(kept)

    def unpaused(self, jobs: Sequence[Delivery]) -> Sequence[Delivery]:
        """The jobs whose reader has not paused their mail; the others are recorded ``paused``,
        never handed over (once a write has failed they stay as they are: the run is stopping)."""
        if not self.paused_keys or self.writer_done:
            return jobs
        kept: list[Delivery] = []
        for job in jobs:
            if address_key(job.address) in self.paused_keys:
                self.record(Outcome(job, "paused"))
                self.count_set_aside(1)
            else:
                kept.append(job)
        return kept

    def count_set_aside(self, count: int) -> None:
        self.summary.set_aside += count
        for _ in range(count):
            self.progress.finished_one("", None)

    async def worker(self) -> None:
        connection = self.transport.connection()
        try:
            while not self.stop.is_set():
                await self.limiter.acquire()
                await self.check_database()
                job = await self.next_job()
                if job is None:
                    break
                pause = await self.deliver(connection, job)
                await self.room_for_outcomes()
                if pause:
                    await asyncio.sleep(pause)
        except Exception:
            self.stop.set()  # the others finish what they have in hand and stop
            raise
        finally:
            await connection.close()

    async def next_job(self) -> Delivery | None:
        """Claim the next row (a retry whose backoff is over, one a stopped worker left, or the next
        pending one); while others are in flight or backing off, wait for them; None when all are done."""
        while not self.stop.is_set():
            if self.claimed:
                job = self.claimed.popleft()
                self.claim_ahead()  # the next batches, while this one goes
                return job
            if self.claiming:  # a connection waits for a claim: claim further ahead from now on
                if self.may_grow:
                    self.ahead, self.may_grow = min(self.ahead + self.batch, self.most_ahead), False
                self.refilled.clear()
                await self.refilled.wait()
                continue
            if not self.drained:
                try:
                    await asyncio.shield(self.start_claim())
                except StoreError as exc:  # nothing handed over yet: stop here
                    self.stop_on_full_disk(exc)
                    return None
                continue
            # Nothing was due at the last claim: one look at what is left, shared by the connections.
            outlook = await asyncio.shield(self.looking or self.look())
            if not outlook.left:
                return None
            self.changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(max(outlook.wake_in, 0.05), 1.0))
            self.drained = False  # an outcome came in, or a backoff is over: claim again
        return None

    def look(self) -> asyncio.Task[Outlook]:
        self.looking = asyncio.create_task(self.io.run(self.journal.outlook, self.issue))
        self.looking.add_done_callback(self.looked)
        return self.looking

    def looked(self, task: asyncio.Task[Outlook]) -> None:
        self.looking = None
        if not task.cancelled():
            task.exception()  # a look that fails is said to each connection that waited for it

    def claim_ahead(self) -> None:
        """Start claims while the rows in hand and those of the claims under way leave room for
        one more claim within ``ahead`` (one claim at a time once the journal has run dry)."""
        most, size = (1 if self.drained else self.claims.most), self.claim_size
        while len(self.claiming) < most and len(self.claimed) + size * (len(self.claiming) + 1) <= self.ahead:
            self.start_claim()

    def start_claim(self) -> asyncio.Task[int]:
        task = asyncio.create_task(self.claim())
        self.claiming.add(task)
        task.add_done_callback(self.claim_ended)
        return task

    def claim_ended(self, task: asyncio.Task[int]) -> None:
        self.claiming.discard(task)
        self.refilled.set()
        # A claim ahead that fails is said by the next claim, or by the run's first error.
        if not task.cancelled():
            task.exception()

    async def claim(self) -> int:
        """Claim a batch into ``claimed``; returns how many rows it took (sent or skipped)."""
        issue, worker, size, lease = self.issue, self.me.worker, self.claim_size, self.lease
        claimed = await self.claims.run(lambda store: store.claim_batch(issue, worker, size, lease))
        self.skip_suppressed(claimed.suppressed)
        self.claimed.extend(self.unpaused(claimed.deliveries))
        taken = len(claimed.deliveries) + claimed.suppressed
        self.drained = not taken
        self.may_grow = self.may_grow or bool(taken)
        return taken

    def skip_suppressed(self, count: int) -> None:
        for _ in range(count):
            self.summary.suppressed += 1
            self.progress.finished_one("", None)

    def stop_on_full_disk(self, exc: BaseException) -> None:
        if not isinstance(exc, StoreFull):
            raise exc
        self.journal.free_reserve()  # for the messages still in flight
        self.fatal = self.fatal or exc
        self.stop.set()

    async def deliver(self, connection: Connection, job: Delivery) -> float:
        """Send one claimed delivery and record it; returns how long this connection should back off."""
        try:
            envelope = self.template.envelope(Subscriber(job.address, job.name, job.fields), job.id)
        except MergeFieldError as exc:  # a row the pre-send check did not pass (--force): this one fails
            self.record_unfillable(job, f"the message cannot be filled in: {exc}")
            return 0.0
        try:
            result = await connection.send(envelope)
        except SMTPStartError as exc:  # the login was refused: nothing was handed over
            self.record(Outcome(job, "released"))
            self.fatal = exc
            self.stop.set()
            return 0.0
        # Anything else (Ctrl+C, a crash) leaves the row "sending": the server may have the
        # message, so the next run resends it and counts it as possibly duplicated.
        if result.kind is Kind.SENT:
            await self.record_sent(job, envelope.message_id, result)
            return 0.0
        pause, final = self.record_failure(job, result)
        if not result.local:  # a reader we cannot mail through this relay says nothing about it
            self.streak.add(job.address, result, final=final)
        if self.streak.count >= self.smtp.max_consecutive_failures:
            # Messages still in flight add to the streak: the reason is written once they are in.
            self.last_failure = self.last_failure or result
            self.stop.set()
            return 0.0
        return pause

    async def check_database(self) -> None:
        """Stop if the database file was deleted or replaced: what is written now would be lost with
        it, and the next run would mail everyone again. Its record is saved once the run has written
        every outcome (lost_database)."""
        now = time.monotonic()
        if now < self.next_database_check or self.fatal is not None:
            return
        self.next_database_check = now + DATABASE_CHECK_SECONDS
        if await self.io.run(self.journal.lost):
            self.stop.set()

    def record(self, outcome: Outcome) -> None:
        """Hand an outcome to the writer (write_outcomes)."""
        self.outcomes.append(outcome)
        self.unwritten += 1
        self.arrived.set()

    async def room_for_outcomes(self) -> None:
        """A connection waits while ``most_unwritten`` outcomes are not yet written: a crash loses no more."""
        while self.unwritten >= self.most_unwritten and not self.writer_done:
            self.written.clear()
            await self.written.wait()

    async def write_outcomes(self) -> None:
        """Hand whatever outcomes have come in to a free writer (a session of its own), as one
        transaction, while earlier ones are still under way, until the run ends; then wait for
        them all. After a write fails nothing more is written (the run stops; those rows are
        resent, flagged, by the next run)."""
        writes: set[asyncio.Task[None]] = set()
        try:
            while not self.write_failed and not (self.closing and not self.outcomes):
                if not self.outcomes or (self.scribes.busy() and len(self.outcomes) < self.batch):
                    # Less than a batch while every writer is busy: let it grow (a store that
                    # answers fast needs no more sessions, a distant one soon has a batch waiting).
                    await self.arrived.wait()
                    self.arrived.clear()
                    continue
                if (gap := self.spacing()) > 0:
                    await asyncio.sleep(gap)
                    continue
                lane = await self.scribes.take()
                batch, self.outcomes, self.last_write = self.outcomes, [], time.monotonic()
                task = asyncio.create_task(self.write(lane, batch))
                writes.add(task)
                task.add_done_callback(writes.discard)
            if writes:
                await asyncio.wait(set(writes))
        except StoreError as exc:  # no session to write on
            self.fatal = self.fatal or exc
            self.stop.set()
        finally:
            self.writer_done = True
            self.written.set()

    def spacing(self) -> float:
        """How much longer the outcomes that came in wait for more before they go (a batch goes at
        once). Commits are at least GATHER_SECONDS apart, and on a store of several sessions spread
        over the time one takes, so each carries its share: handed out as they came, the first few
        would carry one or two outcomes each and the rest would pile up behind them until the cap
        of outcomes not yet written stopped the connections."""
        if self.closing or len(self.outcomes) >= self.batch:
            return 0.0
        gap = max(self.write_seconds / self.scribes.most, GATHER_SECONDS)
        return gap - (time.monotonic() - self.last_write)

    async def write(self, lane: Lane[Store], batch: list[Outcome]) -> None:
        """One transaction of outcomes. On a full disk the reserve is freed so that these and the
        messages still in flight are written (the next run must not mail them again), and the run stops."""
        try:
            started = time.monotonic()
            try:
                await lane.run(lambda store: store.record_outcomes(batch))
            except StoreFull as exc:
                if not self.journal.free_reserve():
                    raise
                self.fatal = self.fatal or exc
                self.stop.set()
                await lane.run(lambda store: store.record_outcomes(batch))
            self.write_seconds += (time.monotonic() - started - self.write_seconds) / 4
            self.unwritten -= len(batch)
            self.written.set()
            self.arrived.set()  # the writer may hand what waits to this session
            self.changed.set()  # connections waiting for rows in flight look again
        except Exception as exc:  # the run stops and says it (a StoreError in one line)
            self.fatal = self.fatal or exc
            self.write_failed = True
            self.stop.set()
            self.arrived.set()
        finally:
            self.scribes.give(lane)

    async def record_sent(self, job: Delivery, message_id: str, result: Result) -> None:
        self.record(Outcome(job, "sent", str(result), message_id))
        self.summary.sent += 1
        if job.resent:
            self.summary.possibly_duplicated += 1
        self.progress.finished_one(job.address, result)
        if bounces := self.streak.end():
            await self.suppress_bounces(bounces)

    def record_failure(self, job: Delivery, result: Result) -> tuple[float, bool]:
        """Retry later or fail for good; returns the connection's backoff and whether it failed for good."""
        attempts = job.attempts + 1
        reply = str(result)
        if result.kind is Kind.TEMPORARY:
            if attempts < self.smtp.max_attempts and job.tried_for() < self.smtp.retry_max_seconds:
                delay = self.retry_later(job, result, attempts)
                return (delay if result.reset_connection else 0.0), False
            reply = f"{result} (gave up after {attempts} attempts)"
        self.record(Outcome(job, "failed", reply))
        self.summary.failed += 1
        self.summary.failures.append((job.address, reply))
        self.progress.finished_one(job.address, result)
        return (backoff(1, self.smtp.retry_delay) if result.reset_connection else 0.0), True

    def record_unfillable(self, job: Delivery, reply: str) -> None:
        """A recipient whose message cannot be filled in fails with the reason; the send goes on."""
        self.record(Outcome(job, "failed", reply))
        self.summary.failed += 1
        self.summary.failures.append((job.address, reply))
        self.progress.finished_one(job.address, Result(Kind.PERMANENT, 0, reply))

    async def suppress_bounces(self, bounces: list[tuple[str, Result]]) -> None:
        for address, result in bounces:
            await self.io.run(self.campaign.suppressions.add, address, "bounced", f"{self.campaign.issue}: {result}")

    def retry_later(self, job: Delivery, result: Result, attempts: int) -> float:
        delay = backoff(attempts, self.smtp.retry_delay)
        due = time.time() + delay  # then any worker may claim it again
        self.record(Outcome(job, "deferred", str(result), uncertain=result.uncertain, not_before=due))
        self.summary.retried += 1
        self.progress.retrying(job.address, result, delay)
        return delay


def _close(store: Store) -> None:
    store.close()


def end_leases_of_the_gone(journal: Store, issue: str) -> int:
    """End the leases of this machine's workers whose process is gone (see identity.py), so their
    rows are taken over now; returns how many rows that freed."""
    return journal.expire_workers(issue, [w for w in journal.in_flight_workers(issue) if gone_here(w)])


async def dispatch(campaign: Campaign, transport: Transport, smtp: SMTPSettings, progress: Progress) -> Summary:
    """Probe the route, then run this process's part of the campaign."""
    await transport.probe()  # a refused connection or login stops here, before any claim
    return await _Run(campaign, transport, smtp, progress).execute()
