"""One issue's campaign: the send lock, the list loaded into the journal (the pre-flight), joining
a send that runs, and the campaign's fingerprint; the engine (engine.py) does the sending."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..audience.links import signer_for
from ..audience.signup import Tally, merge_lists
from ..audience.subscribers import ListReport, read_subscribers
from ..audience.suppressions import SuppressionList
from ..compose.dkim import dkim_signer
from ..compose.envelope import MessageTemplate
from ..compose.issue import read_issue
from ..compose.render import RenderedIssue, render_issue
from ..config import Settings, SMTPSettings
from ..errors import AlreadySending, StateLost, UserInputError
from ..store.base import Store
from ..store.database import FileIdentity, sent_issues
from ..store.factory import confirmed_signups, open_store
from ..store.sqlite import SQLiteStore
from .engine import NoProgress, Progress, Summary, dispatch, end_leases_of_the_gone
from .identity import new_identity
from .route import delivery_route
from .transport import SMTPTransport, Transport

__all__ = ["Campaign", "Preflight", "content_hash", "join_campaign", "open_campaign"]


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
    from_csv: int = 0
    from_signups: int = 0


class Campaign:
    """One issue's dispatch to its list. Open with ``open_campaign``, which holds the send lock."""

    def __init__(
        self,
        settings: Settings,
        rendered: RenderedIssue,
        journal: Store,
        preflight: Preflight,
        issue_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.rendered = rendered
        self.journal = journal
        self.suppressions = SuppressionList(journal)
        self.preflight = preflight
        self.issue = rendered.issue.key
        # A SQLite file can be deleted or replaced under a running send; a server database cannot.
        self.database = FileIdentity.of(settings.database_path) if isinstance(journal, SQLiteStore) else None
        self.identity = new_identity()
        self.issue_path = issue_path  # for worker processes, which render it again
        self.watch_others = False  # other workers share this send: show the whole send's progress

    def template(self) -> MessageTemplate:
        return MessageTemplate(self.rendered, self.settings, signer_for(self.settings), dkim=dkim_signer(self.settings))

    def run(
        self, progress: Progress | None = None, transport: Transport | None = None, smtp: SMTPSettings | None = None
    ) -> Summary:
        """Send in this process; ``transport`` and ``smtp``: a given route (a worker process gets its
        parent's) instead of the configured relay or a new outbox."""
        progress = progress or NoProgress()
        if transport is not None:
            return asyncio.run(dispatch(self, transport, smtp or self.settings.smtp, progress))
        with delivery_route(self.settings) as route:
            return asyncio.run(dispatch(self, SMTPTransport(route.smtp), route.smtp, progress))


def content_hash(rendered: RenderedIssue, settings: Settings) -> str:
    """What a send sends, for ``--join`` to compare: the subject and both rendered bodies (each
    render draws its own placeholder nonce: it is left out), every setting that shows in a
    message's headers, and the link secret (a digest of a key derived from it: unsubscribe links,
    Message-IDs and VERP tokens must be the same whichever machine sends)."""
    digest = hashlib.sha256()
    nonce = f"nlm{rendered.fields.nonce}x"
    news, dkim = settings.newsletter, settings.dkim
    headers: tuple[str, ...] = (news.name, news.from_, news.reply_to, news.language, news.postal_address)
    headers += (news.base_url, news.list_id_value, news.unsubscribe_mailto, settings.bounces.address)
    headers += (repr(settings.brand), dkim.domain, dkim.selector, dkim.ed25519_selector)
    secret = hashlib.sha256(b"newsletter join\0" + signer_for(settings).message_id_key()).hexdigest()
    for part in (rendered.issue.key, rendered.subject, rendered.html, rendered.text, *headers, secret):
        digest.update(part.replace(nonce, "nlm-x").encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def _preflight(journal: Store, issue: str, subscribers: Path, retry_failed: bool) -> Preflight:
    report = ListReport(subscribers)
    end_leases_of_the_gone(journal, issue)
    recovered = journal.recover_in_flight(issue)
    tally = Tally()  # the list at send time: the CSV plus confirmed signups
    signups = confirmed_signups(journal)
    journal.add_recipients(issue, merge_lists(read_subscribers(subscribers, report), signups, tally))
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
        from_csv=tally.from_csv,
        from_signups=tally.from_signups,
    )


@contextmanager
def open_campaign(
    issue_path: Path,
    settings: Settings,
    subscribers: Path | None = None,
    retry_failed: bool = False,
    new_database: bool = False,
) -> Iterator[Campaign]:
    """Render the issue, take the send lock, load the list into the journal."""
    rendered = render_issue(read_issue(issue_path), settings)
    subscribers = subscribers or settings.path(settings.newsletter.subscribers)
    with ExitStack() as stack:
        journal = stack.enter_context(open_store(settings, new_database=new_database))
        stack.enter_context(journal.send_lock(rendered.issue.key))
        if not new_database:
            _refuse_a_store_that_forgot(journal, rendered.issue.key, settings)
        preflight = _preflight(journal, rendered.issue.key, subscribers, retry_failed)
        journal.record_send(rendered.issue.key, content_hash(rendered, settings), replace=True)
        yield Campaign(settings, rendered, journal, preflight, issue_path)


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
def join_campaign(issue_path: Path, settings: Settings) -> Iterator[Campaign]:
    """Join a send of the issue that is running (here or on another machine, on the same store):
    the same issue file is required, the list is the one the send loaded."""
    rendered = render_issue(read_issue(issue_path), settings)
    issue = rendered.issue.key
    with open_store(settings) as journal:
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
