"""The ``newsletter`` command: parses arguments, calls one function, prints the outcome.

Every NewsletterError becomes a one-line message and an exit code, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from .compose.render import SIZE_WARNING_BYTES
from .config import Settings, load_settings
from .errors import NewsletterError, UserInputError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FINDINGS = 1
EXIT_USER_ERROR = 2


def friendly(func: F) -> F:
    """Turn our exceptions into a message and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            if isinstance(exc, UserInputError) and exc.file:  # file:line: error: message, as check says
                where = f"{exc.file}:{exc.line}" if exc.line else exc.file
                err.print(f"{escape(where)}: [bold red]error:[/] {escape(exc.message)}")
            else:
                err.print(f"[bold red]error:[/] {escape(str(exc))}")
            sys.exit(EXIT_USER_ERROR if isinstance(exc, UserInputError) else EXIT_FINDINGS)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def settings_from(ctx: click.Context) -> Settings:
    config: Path | None = ctx.obj.get("config")
    settings = load_settings(config)
    if not settings.found and not ctx.obj.get("said_defaults"):
        err.print(
            f"note: no {settings.config_path.name} in {settings.workspace}: using defaults "
            "(`newsletter init` writes one)",
            markup=False,
        )
        ctx.obj["said_defaults"] = True
    return settings


def print_findings(findings: list[Any], console: Console) -> None:
    """Each finding as file:line: level: message, errors in red, warnings in yellow."""
    for finding in findings:
        colour = "red" if finding.level == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(finding))}[/]")


@click.group()
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file (default: ./newsletter.toml)."
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Compose and send an email newsletter from one Markdown issue file."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@friendly
def init(directory: Path) -> None:
    """Create a workspace: newsletter.toml, templates/, an example issue and subscriber list."""
    from .workspace import init_workspace

    try:
        written = init_workspace(directory)
    except FileExistsError as exc:
        err.print(f"error: would overwrite {exc}; choose an empty directory")
        sys.exit(EXIT_USER_ERROR)
    for path in written:
        out.print(f"wrote {path}")
    out.print("next: edit newsletter.toml, then `newsletter render issues/example.md`")


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("build"),
    show_default=True,
    help="Where to write .html, .txt and .eml.",
)
@click.option("--as", "as_address", metavar="ADDRESS", help="Fill in the row of ADDRESS in the subscriber list.")
@click.option("--subscribers", type=click.Path(path_type=Path, dir_okay=False), help="The list for --as.")
@click.pass_context
@friendly
def render(ctx: click.Context, issue: Path, out_dir: Path, as_address: str | None, subscribers: Path | None) -> None:
    """Render ISSUE to HTML, plain text and a complete .eml message."""
    from .audience.subscribers import find_subscriber
    from .compose.artifacts import write_files
    from .compose.issue import read_issue
    from .compose.render import render_issue

    settings = settings_from(ctx)
    row = None
    if as_address:
        row = find_subscriber(subscribers or settings.path(settings.newsletter.subscribers), as_address)
    files = write_files(render_issue(read_issue(issue), settings), settings, out_dir, row)
    for path in (files.html, files.text, files.eml):
        out.print(f"wrote {path}")
    size = f"HTML size: {files.html_bytes / 1024:.1f} KB"
    if files.html_bytes >= SIZE_WARNING_BYTES:
        err.print(f"[yellow]warning:[/] {size}: Gmail clips messages from about 102 KB")
    else:
        out.print(f"{size} (Gmail clips from about 102 KB)")


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--subscribers",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check merge fields against this CSV (default: [newsletter] subscribers).",
)
@click.pass_context
@friendly
def check(ctx: click.Context, issue: Path, subscribers: Path | None) -> None:
    """List every problem in ISSUE as file:line: level: message; exit 1 on any error."""
    from .compose.check import check_issue, has_errors

    findings = check_issue(issue, settings_from(ctx), subscribers)
    print_findings(findings, out)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    out.print(f"{errors} error(s), {warnings} warning(s)")
    sys.exit(EXIT_FINDINGS if has_errors(findings) else 0)


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.pass_context
@friendly
def preview(ctx: click.Context, issue: Path, host: str, port: int) -> None:
    """Serve a page with ISSUE at desktop and phone widths and its text part; reloads on save."""
    import uvicorn

    from .web.preview import create_app

    _check_port(port)
    settings_from(ctx)
    out.print(f"preview of {issue} at http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(create_app(issue, ctx.obj.get("config")), host=host, port=port, log_level="warning")


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UserInputError(f"--port must be between 1 and 65535, not {port}")


class RichProgress:
    """Shows a dispatch as it goes: sent, failed, rate, time left."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.sent = self.failed = self.skipped = 0
        self.started_at = 0.0
        self.bar = Progress(
            TextColumn("[bold]sending[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.task = self.bar.add_task("send", total=0, detail="")

    def started(self, total: int) -> None:
        import time

        self.started_at = time.monotonic()
        self.bar.update(self.task, total=total)
        self.bar.start()

    def finished_one(self, address: str, result: Any) -> None:
        import time

        from .send.transport import Kind

        if result is None:
            self.skipped += 1
        elif result.kind is Kind.SENT:
            self.sent += 1
        else:
            self.failed += 1
            self.bar.console.print(f"[red]failed[/] {escape(address)}: {escape(str(result))}")
        rate = self.sent / max(time.monotonic() - self.started_at, 1e-6)
        self.bar.update(self.task, advance=1, detail=f"sent {self.sent}, failed {self.failed}, {rate:.0f}/s")

    def retrying(self, address: str, result: Any, delay: float) -> None:
        self.bar.console.print(f"[yellow]will retry[/] {escape(address)} in {delay:.0f}s: {escape(str(result))}")

    def stop(self) -> None:
        self.bar.stop()


def _print_preflight(p: Any) -> None:
    from rich.table import Table

    table = Table(title=f"Pre-flight: {p.issue} to {p.subscribers}", show_header=False, title_justify="left")
    table.add_row("to send now", f"[bold]{p.to_send}[/]")
    table.add_row("skipped: invalid address", str(p.invalid))
    table.add_row("skipped: duplicate", str(p.duplicates))
    table.add_row("skipped: unsubscribed or bounced", str(p.suppressed))
    table.add_row("already sent", str(p.already_sent))
    if p.failed:
        table.add_row("failed earlier (--retry-failed to try again)", str(p.failed))
    if p.removed:
        table.add_row("no longer in the list (not sent)", str(p.removed))
    if p.resumed_in_flight:
        table.add_row("in flight when the last run stopped (will be resent)", str(p.resumed_in_flight))
    out.print(table)
    for problem in p.problems[:20]:
        err.print(problem, markup=False)
    hidden = len(p.problems) - 20 + p.more_problems
    if hidden > 0:
        err.print(f"... and {hidden} more skipped rows (`newsletter subscribers check` lists them)")


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--test", "test", is_flag=True, help="Send a test copy to the test recipients (or --to).")
@click.option("--to", "to", multiple=True, help="With --test: any address, repeatable.")
@click.option(
    "--subscribers",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Subscriber CSV (default: [newsletter] subscribers).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Build every message, send nothing.")
@click.option("--as", "as_address", metavar="ADDRESS", help="With --dry-run: print the message ADDRESS would get.")
@click.option("--retry-failed", is_flag=True, help="Try the recipients that failed before again.")
@click.option("--concurrency", type=click.IntRange(1, 200), help="Parallel SMTP connections.")
@click.option("--rate", type=click.FloatRange(0), help="Messages per second (0: no limit).")
@click.option("--force", is_flag=True, help="Send even if the pre-send check finds errors.")
@click.pass_context
@friendly
def send(
    ctx: click.Context,
    issue: Path,
    test: bool,
    to: tuple[str, ...],
    subscribers: Path | None,
    yes: bool,
    dry_run: bool,
    retry_failed: bool,
    concurrency: int | None,
    rate: float | None,
    force: bool,
    as_address: str | None,
) -> None:
    """Send ISSUE: a test with --test, otherwise to every subscriber, resumably."""
    from dataclasses import replace

    from .compose.check import has_errors, run_check
    from .send import dispatch

    settings = settings_from(ctx)
    if concurrency is not None or rate is not None:
        smtp = replace(
            settings.smtp,
            concurrency=concurrency or settings.smtp.concurrency,
            rate=settings.smtp.rate if rate is None else rate,
        )
        settings = replace(settings, smtp=smtp)
    if to and not test:
        raise click.UsageError("--to goes with --test")
    if as_address:
        if not dry_run:
            raise click.UsageError("--as goes with --dry-run")
        from .compose.artifacts import message_as

        click.echo(message_as(issue, settings, as_address, subscribers), nl=False)
        return
    findings = run_check(issue, settings, subscribers)
    print_findings(findings, err)
    if has_errors(findings):
        if not force:
            from .errors import CheckFailed

            raise CheckFailed("the pre-send check found errors (listed above); fix them, or send with --force")
        err.print("[yellow]sending despite errors (--force)[/]")
    if test:
        result = dispatch.send_test(issue, settings, to)
        failed = False
        for address, outcome in result.results:
            ok = outcome.kind.value == "sent"
            failed |= not ok
            out.print(f"{'sent' if ok else '[red]failed[/]'} test to {escape(address)}: {escape(str(outcome))}")
        if result.outbox:
            out.print(
                f"no SMTP host is configured: the test went to the local outbox {result.outbox}/new/ "
                "(open the files with a mail client)"
            )
        sys.exit(EXIT_FINDINGS if failed else 0)
    if dry_run:
        report = dispatch.dry_run(issue, settings, subscribers)
        for problem in report.problems[:20]:
            err.print(problem, markup=False)
        out.print(
            f"dry run: built {report.built} messages ({report.octets / 1e6:.1f} MB), sent none; "
            f"skipped {report.invalid} invalid, {report.duplicates} duplicate, "
            f"{report.suppressed} unsubscribed, {report.already_sent} already sent"
        )
        return
    with dispatch.open_campaign(issue, settings, subscribers, retry_failed) as campaign:
        _print_preflight(campaign.preflight)
        if campaign.preflight.to_send == 0:
            out.print("nothing to send")
            sys.exit(EXIT_FINDINGS if campaign.preflight.failed else 0)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("not asking for confirmation without a terminal: add --yes to send")
            click.confirm(f"Send {campaign.issue} to {campaign.preflight.to_send} recipients?", abort=True)
        if not settings.smtp.host:
            out.print(
                f"no SMTP host is configured: delivering through a built-in SMTP server on loopback "
                f"into {settings.workspace / 'outbox'}/new/"
            )
        progress = RichProgress()
        try:
            summary = campaign.run(progress)
        finally:
            progress.stop()
    out.print(
        f"sent {summary.sent}, failed {summary.failed}, skipped as unsubscribed {summary.suppressed}, "
        f"in {summary.elapsed:.1f}s"
    )
    if summary.possibly_duplicated:
        out.print(
            f"[yellow]possibly duplicated: {summary.possibly_duplicated}[/] (in flight when an earlier run "
            "stopped, or the connection dropped after the message was sent; same Message-ID)"
        )
    if summary.left_pending:
        out.print(f"[yellow]{summary.left_pending} still to send[/]: run the same command again to resume")
    if summary.failed:
        out.print(f"`newsletter status {issue}` lists the failures; `--retry-failed` tries them again")
    sys.exit(EXIT_FINDINGS if summary.failed or summary.left_pending else 0)


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@friendly
def status(ctx: click.Context, issue: Path) -> None:
    """Journal counts for ISSUE and each failed recipient with its last SMTP reply."""
    from .store.journal import SQLiteJournal

    settings = settings_from(ctx)
    if not settings.database_path.exists():
        out.print(f"{issue.stem}: nothing sent yet")
        return
    journal = SQLiteJournal.open(settings.database_path)
    try:
        counts = journal.counts(issue.stem)
        failures = journal.failures(issue.stem)
    finally:
        journal.close()
    out.print(
        f"{issue.stem}: sent {counts['sent']}, pending {counts['pending']}, failed {counts['failed']}, "
        f"skipped as unsubscribed {counts['suppressed']}, no longer in the list {counts['removed']}, "
        f"in flight {counts['sending']}, possibly duplicated {counts['resent']}"
    )
    for address, attempts, reply in failures:
        out.print(f"failed {escape(address)} after {attempts} attempt(s): {escape(reply)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
@friendly
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Run the unsubscribe endpoint (GET confirm page, POST one-click unsubscribe, /healthz)."""
    import uvicorn

    from .web.unsubscribe import create_app

    _check_port(port)
    settings = settings_from(ctx)
    out.print(
        f"unsubscribe endpoint for {settings.newsletter.name} on http://{host}:{port}/ "
        f"(links point to {settings.newsletter.base_url})",
        markup=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=True)


@main.command()
@click.argument("address")
@click.option(
    "--reason",
    type=click.Choice(["unsubscribed", "bounced", "complained", "manual"]),
    default="unsubscribed",
    show_default=True,
)
@click.pass_context
@friendly
def unsubscribe(ctx: click.Context, address: str, reason: str) -> None:
    """Put ADDRESS on the suppression list: no send mails it again."""
    from email_validator import EmailNotValidError

    from .audience.subscribers import normalise_address
    from .audience.suppressions import SuppressionList
    from .errors import UserInputError
    from .store.database import connect

    settings = settings_from(ctx)
    try:
        normalised = normalise_address(address)
    except EmailNotValidError as exc:
        raise UserInputError(f"{address!r} is not a valid address: {exc}") from None
    db = connect(settings.database_path)
    try:
        added = SuppressionList(db).add(normalised, reason, "cli")
    finally:
        db.close()
    out.print(f"{normalised} {'suppressed' if added else 'was already suppressed'} ({reason})", markup=False)


@main.group()
def suppressions() -> None:
    """Export or import the suppression list."""


@suppressions.command("export")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False), default="-")
@click.pass_context
@friendly
def suppressions_export(ctx: click.Context, csv_path: Path) -> None:
    """Write the suppression list as CSV (email, reason, source, created) to CSV_PATH or stdout."""
    from .audience.suppressions import SuppressionList
    from .store.database import connect

    db = connect(settings_from(ctx).database_path)
    try:
        if str(csv_path) == "-":
            count = SuppressionList(db).export_csv(sys.stdout)
        else:
            with csv_path.open("w", encoding="utf-8", newline="") as handle:
                count = SuppressionList(db).export_csv(handle)
    finally:
        db.close()
    err.print(f"exported {count} suppressed addresses")


@suppressions.command("import")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@friendly
def suppressions_import(ctx: click.Context, csv_path: Path) -> None:
    """Add every address in CSV_PATH (an email column, optional reason) to the suppression list."""
    from .audience.suppressions import SuppressionList
    from .store.database import connect

    db = connect(settings_from(ctx).database_path)
    try:
        added, problems = SuppressionList(db).import_csv(csv_path)
    finally:
        db.close()
    for problem in problems:
        err.print(problem, markup=False)
    out.print(f"imported {added} new suppressed addresses")


@main.group()
def subscribers() -> None:
    """Inspect a subscriber list."""


@subscribers.command("check")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.pass_context
@friendly
def subscribers_check(ctx: click.Context, csv_path: Path | None) -> None:
    """Report invalid and duplicate rows of CSV_PATH and how many addresses would be mailed."""
    from .audience.subscribers import ListReport, read_subscribers
    from .audience.suppressions import SuppressionList
    from .store.database import connect

    settings = settings_from(ctx)
    path = csv_path or settings.path(settings.newsletter.subscribers)
    report = ListReport(path)
    db = connect(settings.database_path) if settings.database_path.exists() else None
    suppressed = 0
    try:
        lst = SuppressionList(db) if db else None
        for subscriber in read_subscribers(path, report):
            if lst is not None and subscriber.email in lst:
                suppressed += 1
    finally:
        if db:
            db.close()
    for problem in report.problems:
        out.print(problem, markup=False)
    if report.more_problems:
        out.print(f"... and {report.more_problems} more")
    out.print(
        f"{report.valid} valid addresses: {report.valid - suppressed} would be mailed, "
        f"{suppressed} are unsubscribed or bounced; skipped {report.invalid} invalid and "
        f"{report.duplicates} duplicate rows"
    )
    sys.exit(EXIT_FINDINGS if report.invalid or report.duplicates else 0)


@main.group()
def dkim() -> None:
    """DKIM keys for signing."""


@dkim.command("keygen")
@click.option("--selector", default="newsletter", show_default=True)
@click.option("--domain", help="Signing domain (default: the From address's domain).")
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Private key file (default: .newsletter/dkim-SELECTOR.pem, mode 0600).",
)
@click.option("--bits", type=click.Choice(["2048", "3072", "4096"]), default="2048", show_default=True)
@click.pass_context
@friendly
def dkim_keygen(ctx: click.Context, selector: str, domain: str | None, out_path: Path | None, bits: str) -> None:
    """Write a DKIM key pair and print the DNS TXT record to publish."""
    from .compose.dkim import generate_key, write_key
    from .config import valid_selector
    from .errors import UserInputError

    if not valid_selector(selector):
        raise UserInputError(
            f"--selector must be a DNS label (letters, digits and hyphens, dots between labels), not {selector!r}"
        )
    settings = settings_from(ctx)
    domain = domain or settings.newsletter.from_domain
    path = out_path or settings.state_dir / f"dkim-{selector}.pem"
    if path.exists():
        raise UserInputError("a key already exists there; choose another --out or --selector", file=path)
    pair = generate_key(selector, domain, int(bits))
    write_key(pair, path)
    out.print(f"wrote the private key to {path} (mode 0600; keep it out of version control)", markup=False)
    out.print("\nPublish this TXT record in DNS:\n", markup=False)
    out.print(f'{pair.dns_name}. IN TXT "{pair.dns_value}"', markup=False)
    out.print("\nThen add to newsletter.toml:\n", markup=False)
    relative = path.relative_to(settings.workspace) if path.is_relative_to(settings.workspace) else path
    out.print(f'[dkim]\ndomain = "{domain}"\nselector = "{selector}"\nkey_file = "{relative}"', markup=False)
