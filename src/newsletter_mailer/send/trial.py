"""Trying an issue without sending it to the list: a test copy to chosen addresses (nothing
recorded) and a dry run (every message built, none sent)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from email_validator import EmailNotValidError

from ..audience.links import signer_for
from ..audience.preference_log import reader_choices
from ..audience.signup import Tally, merge_lists
from ..audience.signup_log import confirmed_signups
from ..audience.subscribers import ListReport, Subscriber, normalise_address, read_subscribers
from ..audience.suppressions import SuppressionList
from ..compose.dkim import dkim_signer
from ..compose.editions import Editions, VariantCount, each_language
from ..compose.envelope import MessageTemplate
from ..compose.render import RenderedIssue
from ..compose.translations import reach
from ..compose.variants import Variant
from ..config import Settings
from ..errors import ConfigError, MergeFieldError, UserInputError
from ..store.factory import open_store
from .providers import transport_for
from .route import delivery_route
from .transport import Kind, Result, Transport

__all__ = ["TEST_PREFIX", "DryRun", "TestSend", "dry_run", "send_test", "test_recipients"]

TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class DryRun:
    built: int
    octets: int
    invalid: int
    duplicates: int
    suppressed: int
    already_sent: int
    problems: tuple[str, ...]
    variants: tuple[VariantCount, ...] = ()  # an issue with conditions: how many messages of each
    languages: tuple[str, ...] = ()  # with translations: how many readers get each language (reach)
    paused: int = 0  # readers who paused their mail on the preferences page (no message built)


def dry_run(rendered: RenderedIssue, settings: Settings, subscribers: Path | None = None) -> DryRun:
    """Build every message that a send would, and send none; nothing is written to the journal."""
    subscribers = subscribers or settings.path(settings.newsletter.subscribers)
    signer, dkim = signer_for(settings), dkim_signer(settings)
    editions = Editions(rendered, settings, lambda r: MessageTemplate(r, settings, signer, dkim=dkim))
    chooser = each_language(editions)  # each reader's language, as a send picks it
    others = chooser.others
    cells: list[str] = []
    tally: Counter[Variant] = Counter()
    report = ListReport(subscribers)
    built = octets = suppressed = already = paused = 0
    with open_store(settings) as journal:
        suppressions = SuppressionList(journal)
        signups = confirmed_signups(journal)
        choices = reader_choices(settings, journal)
        for subscriber in merge_lists(read_subscribers(subscribers, report), signups, Tally()):
            if subscriber.email in suppressions:
                suppressed += 1
                continue
            if choices is not None:
                if choices.paused(subscriber.email):
                    paused += 1
                    continue
                subscriber = choices.reader(subscriber)
            if journal.state_of(rendered.issue.key, subscriber.email) == "sent":
                already += 1
                continue
            variant = editions.variant_of(subscriber)
            try:
                octets += len(chooser.envelope(subscriber).data)
            except MergeFieldError as exc:  # reported as a skipped row; a send marks it failed
                report.add_problem(subscriber.line, str(exc))
                continue
            built += 1
            tally[variant] += 1
            cells.append(dict(subscriber.fields).get("language", ""))
    counts = tuple(editions.counts(tally)) if editions.segmenter.parts else ()
    skipped = (report.invalid, report.duplicates, suppressed, already)
    languages = tuple(reach(cells, rendered.language, [*others])) if others and any(cells) else ()
    return DryRun(built, octets, *skipped, tuple(report.problems), counts, languages, paused)


@dataclass(frozen=True)
class TestSend:
    recipients: tuple[str, ...]
    results: tuple[tuple[str, Result], ...]
    outbox: Path | None
    staged: int = 0  # the issue's images newly copied into the web archive before the send


def test_recipients(settings: Settings, to: tuple[str, ...]) -> list[str]:
    """The addresses a test goes to; a bad one is blamed where it was written: --to or the settings."""
    if to:
        return [_address(raw, f"--to {raw!r} is not a valid address", None) for raw in to]
    if not settings.newsletter.test_recipients:
        raise ConfigError(
            "no test recipients: give --to ADDRESS or set [newsletter] test_recipients",
            file=settings.config_path if settings.found else None,
        )
    where = settings.config_path if settings.found else None
    return [
        _address(raw, f"[newsletter] test_recipients: {raw!r} is not a valid address", where)
        for raw in settings.newsletter.test_recipients
    ]


def _address(raw: str, message: str, file: Path | None) -> str:
    try:
        return normalise_address(raw)
    except EmailNotValidError as exc:
        error = ConfigError if file else UserInputError
        raise error(f"{message}: {exc}", file=file) from None


def send_test(
    rendered: RenderedIssue,
    settings: Settings,
    to: tuple[str, ...] = (),
    transport: Transport | None = None,
    *,
    reader: Subscriber | None = None,
) -> TestSend:
    """Send the issue to the test recipients (or any addresses given), subject prefixed [TEST];
    with ``reader``, the very message that reader would get (their name in To, their fields, their
    variant and language), handed to the test recipients instead of them.

    Nothing is recorded in the journal; each copy gets a fresh Message-ID so mail clients
    show every test instead of folding them together.
    """
    recipients = test_recipients(settings, to)
    signer, dkim = signer_for(settings, test=True), dkim_signer(settings)  # its links change nothing
    editions = Editions(
        rendered,
        settings,
        lambda r: MessageTemplate(r, settings, signer, subject_prefix=TEST_PREFIX, unique_ids=True, dkim=dkim),
    )

    readers_copy = each_language(editions)  # the reader's translation, as a send picks it

    async def deliver(chosen: Transport) -> list[tuple[str, Result]]:
        await chosen.probe()
        connection = chosen.connection()
        out = []
        try:
            for address in recipients:
                if reader is None:  # every part shown, for the editor to read through
                    envelope = editions.template(Variant(editions.segmenter.all_parts)).envelope(
                        Subscriber(email=address, name="Test Reader")
                    )
                else:
                    envelope = replace(readers_copy.envelope(reader), recipient=address)
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
        results = asyncio.run(deliver(transport_for(settings, route.smtp)))
        return TestSend(tuple(recipients), tuple(results), route.outbox)
