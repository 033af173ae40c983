"""One issue's campaign as the engine sends it: the rendered issue, its store, its pre-flight
counts and its fingerprint (what ``--join`` compares); app/send_campaign.py opens it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..audience.links import signer_for
from ..audience.suppressions import SuppressionList
from ..compose.dkim import dkim_signer
from ..compose.editions import Editions, VariantCount, each_language
from ..compose.envelope import MessageTemplate
from ..compose.render import RenderedIssue
from ..compose.translations import ByLanguage, translations_of
from ..config import Settings, SMTPSettings
from ..store.base import Store
from .engine import NoProgress, Progress, Summary, dispatch
from .identity import new_identity
from .providers import transport_for
from .route import delivery_route
from .transport import Transport

__all__ = ["Campaign", "Preflight", "content_hash"]


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
    first_run: bool = False  # the journal had no row of the issue before this pre-flight
    variants: tuple[VariantCount, ...] = ()  # an issue with conditions: how many readers get each
    held: int = 0  # listed readers this run's --where leaves out (neither sent nor removed)
    where: str = ""  # this run's --where, as given
    paused: int = 0  # listed readers who paused their mail on the preferences page (not sent)


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
        self.identity = new_identity()
        self.issue_path = issue_path  # for worker processes, which render it again
        self.watch_others = False  # other workers share this send: show the whole send's progress
        # A database lost mid-send is written out by the process that ends last on it: with
        # several workers, the first, once the others have ended (send/pool.py).
        self.saves_lost_database = True
        self._editions: Editions | None = None

    def template(self) -> Editions:
        """The message of each variant, built once per campaign (the pre-flight builds the
        variants its list has before the run starts)."""
        if self._editions is None:
            signer, dkim = signer_for(self.settings), dkim_signer(self.settings)
            self._editions = Editions(
                self.rendered,
                self.settings,
                lambda rendered: MessageTemplate(rendered, self.settings, signer, dkim=dkim),
            )
        return self._editions

    def by_language(self) -> Editions | ByLanguage[Editions]:
        """What the engine fills for each reader: the issue's editions (one per variant) and, with
        translations beside it (``2026-12.fr.md``), each translation's, chosen by the reader's
        language; every (language, variant) rendered and encoded once."""
        chooser = each_language(self.template())
        return chooser if chooser.others else chooser.main

    def run(
        self, progress: Progress | None = None, transport: Transport | None = None, smtp: SMTPSettings | None = None
    ) -> Summary:
        """Send in this process; ``transport`` and ``smtp``: a given route (a worker process gets its
        parent's) instead of the configured relay or a new outbox."""
        progress = progress or NoProgress()
        if transport is not None:
            return asyncio.run(dispatch(self, transport, smtp or self.settings.smtp, progress))
        with delivery_route(self.settings) as route:
            return asyncio.run(dispatch(self, transport_for(self.settings, route.smtp), route.smtp, progress))


def content_hash(rendered: RenderedIssue, settings: Settings) -> str:
    """What a send sends, for ``--join`` to compare: the subject and both rendered bodies (each
    render draws its own placeholder nonce: it is left out), every setting that shows in a
    message's headers, the conditions that pick each reader's variant, and the link secret (a
    digest of a key derived from it: unsubscribe links, Message-IDs and VERP tokens must be the
    same whichever machine sends), and each translation's file."""
    digest = hashlib.sha256()
    nonce = f"nlm{rendered.fields.nonce}x"
    news, dkim = settings.newsletter, settings.dkim
    headers: tuple[str, ...] = (news.name, news.from_, news.reply_to, news.language, news.postal_address)
    headers += (news.base_url, news.list_id_value, news.unsubscribe_mailto, settings.bounces.address)
    headers += (repr(settings.brand), dkim.domain, dkim.selector, dkim.ed25519_selector)
    if news.from_name or news.reply_to_name:  # only then: a send begun before they existed still joins
        headers += (news.from_name, news.reply_to_name)
    secret = hashlib.sha256(b"newsletter join\0" + signer_for(settings).message_id_key()).hexdigest()
    conditions = tuple(f"{p.part}={p.condition.source}" for p in rendered.issue.conditional_parts())
    # Each translation beside the issue (2026-12.fr.md), by its bytes: an edit to one is a
    # different send too. None: the hash is what it was, so a send begun before still joins.
    translated = tuple(
        f"{t.language}:{hashlib.sha256(t.path.read_bytes()).hexdigest()}" for t in translations_of(rendered.issue.path)
    )
    for part in (
        rendered.issue.key,
        rendered.subject,
        rendered.html,
        rendered.text,
        *headers,
        *conditions,
        secret,
        *translated,
    ):
        digest.update(part.replace(nonce, "nlm-x").encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()
