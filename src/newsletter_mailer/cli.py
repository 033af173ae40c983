"""The ``newsletter`` command: parses arguments, calls one function, prints the outcome.

Every NewsletterError becomes a one-line message and an exit code, never a traceback.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from .compose.render import SIZE_WARNING_BYTES
from .config import Settings, load_settings
from .errors import IssueProblems, NewsletterError, SendDeclined, SendInterrupted, UserInputError

if TYPE_CHECKING:  # the sending machinery is imported when a command needs it: --help stays quick
    from .app.send_campaign import CampaignOutcome, Confirmation, SendResult
    from .app.status import IssueDetail, IssueLine
    from .app.store_admin import Copied
    from .compose.check import Finding
    from .compose.editions import VariantCount
    from .publish.site import PublishResult
    from .send.campaign import Preflight
    from .send.transport import Result
    from .send.trial import DryRun, TestSend

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FINDINGS = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def friendly(func: F) -> F:
    """Turn our exceptions into a message and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            problems = exc.errors if isinstance(exc, IssueProblems) else (exc,)
            for problem in problems:  # several problems: one line each, file:line: error: message
                if isinstance(problem, UserInputError) and problem.file:
                    where = f"{problem.file}:{problem.line}" if problem.line else problem.file
                    err.print(f"{escape(where)}: [bold red]error:[/] {escape(problem.message)}")
                else:
                    err.print(f"[bold red]error:[/] {escape(str(problem))}")
            sys.exit(EXIT_USER_ERROR if isinstance(exc, UserInputError) else EXIT_FINDINGS)
        except _environment_faults() as exc:  # the machine or the store, not the user or a bug: one line
            from .app.stores import describe_fault

            err.print(f"[bold red]error:[/] {escape(describe_fault(exc))}")
            sys.exit(EXIT_FINDINGS)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def _environment_faults() -> tuple[type[BaseException], ...]:
    from .app.stores import unmapped_faults

    return unmapped_faults()


def plural(count: int, word: str, words: str = "") -> str:
    """``1 message``, ``2 messages``; ``words`` for an irregular plural."""
    return f"{count} {word if count == 1 else words or word + 's'}"


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


def print_findings(findings: Sequence[Finding], console: Console) -> None:
    """Each finding as file:line: level: message, errors in red, warnings in yellow."""
    for finding in findings:
        colour = {"error": "red", "warning": "yellow"}.get(finding.level, "default")
        console.print(f"[{colour}]{escape(str(finding))}[/]")


@click.group()
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file (default: ./newsletter.toml)."
)
@click.version_option(package_name="newsletter-mailer", prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Compose and send an email newsletter from one Markdown issue file."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command(short_help="Create a workspace with an issue and a list.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--name", help="The newsletter's name, shown in From and the footer (asked if not given).")
@click.option("--from", "from_", help="The From address, e.g. news@your-domain.org (asked if not given).")
@click.option("--base-url", help="Where `newsletter serve` will be reachable (asked if not given).")
@friendly
def init(directory: Path, name: str | None, from_: str | None, base_url: str | None) -> None:
    """Create a workspace: newsletter.toml, templates/, an example issue and the subscriber list
    the send will use. What is not given as an option is asked for on a terminal."""
    from .config import new_settings_text
    from .workspace import init_workspace

    default_name = directory.resolve().name.replace("-", " ").replace("_", " ").title() or "Our Newsletter"
    asked = {"name": name, "from": from_, "base_url": base_url}
    name = name or ask("The newsletter's name", default_name)
    from_ = from_ or ask("From address", "newsletter@example.org")
    base_url = base_url or ask("Base URL of the unsubscribe pages", "http://127.0.0.1:8000")
    try:
        written = init_workspace(directory, new_settings_text(name, from_, base_url))
    except FileExistsError as exc:
        raise UserInputError(f"would overwrite {exc}; choose an empty directory") from None
    for path in written:
        out.print(f"wrote {path}")
    chosen = {"name": name, "from": from_, "base_url": base_url}
    _say_placeholders({key: value for key, value in chosen.items() if not asked[key]})
    step = "" if directory.resolve() == Path.cwd() else f"`cd {directory}`, then "
    out.print(
        f"next: {step}put your readers in subscribers.csv, and try `newsletter check issues/example.md`",
        markup=False,
    )


def _say_placeholders(placeholders: dict[str, str]) -> None:
    """With nobody at a terminal to ask, the settings not given are placeholders: say which."""
    if placeholders and not sys.stdin.isatty():
        listed = ", ".join(f"{key} = {value!r}" for key, value in placeholders.items())
        err.print(
            f"note: no terminal to ask on, so newsletter.toml has placeholder settings ({listed}): edit "
            "them there before a real send, or give --name, --from and --base-url to init",
            markup=False,
        )


def ask(question: str, default: str) -> str:
    """Ask on a terminal; take the default when nobody is there to answer."""
    if not sys.stdin.isatty():
        return default
    answer: str = click.prompt(question, default=default)
    return answer


@main.command(short_help="Write ISSUE as .html, .txt and .eml files.")
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
    from .app.reader import find_reader
    from .compose.artifacts import write_files
    from .compose.issue import read_issue
    from .compose.render import render_issue

    settings = settings_from(ctx)
    row = None
    if as_address:
        row = find_reader(settings, subscribers, as_address)
    files = write_files(render_issue(read_issue(issue), settings), settings, out_dir, row)
    for path in (files.html, files.text, files.eml):
        out.print(f"wrote {path}")
    size = f"HTML size: {files.html_bytes / 1024:.1f} KB"
    if files.html_bytes >= SIZE_WARNING_BYTES:
        err.print(f"[yellow]warning:[/] {size}: Gmail clips messages from about 102 KB")
    else:
        out.print(f"{size} (Gmail clips from about 102 KB)")


@main.command(short_help="List every problem in ISSUE, file:line first; --dns checks DNS.")
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "--subscribers",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check merge fields against this CSV (default: [newsletter] subscribers).",
)
@click.option("--dns", "dns", is_flag=True, help="Check SPF, DKIM, DMARC, MX and alignment in DNS.")
@click.pass_context
@friendly
def check(ctx: click.Context, issue: Path | None, subscribers: Path | None, dns: bool) -> None:
    """List every problem in ISSUE as file:line: level: message; exit 1 on any error."""
    from .compose.check import check_issue, has_errors, size_summary

    if issue is None and not dns:
        raise click.UsageError("give an ISSUE to check, or --dns")
    failed = check_dns_records(settings_from(ctx)) if dns else False
    if issue is None:
        sys.exit(EXIT_FINDINGS if failed else 0)
    findings = check_issue(issue, settings_from(ctx), subscribers)
    print_findings(findings, out)
    size = size_summary(issue, settings_from(ctx))
    if size is not None:
        out.print(str(size))
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    out.print(f"{errors} error(s), {warnings} warning(s)")
    sys.exit(EXIT_FINDINGS if has_errors(findings) or failed else 0)


def check_dns_records(settings: Settings) -> bool:
    """Print each DNS finding (docs/dns.md); True if any failed."""
    from .compose.dnscheck import check_dns

    findings = check_dns(settings)
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for finding in findings:
        out.print(f"[{colours[finding.level]}]{escape(str(finding))}[/]")
    failed = sum(f.level == "fail" for f in findings)
    out.print(f"dns: {failed} failed, {sum(f.level == 'warn' for f in findings)} warning(s)")
    return failed > 0


@main.command(short_help="Show ISSUE on desktop, phone and as text; live.")
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.option("--as", "as_address", metavar="ADDRESS", help="Show the copy this reader gets (list or signup).")
@click.pass_context
@friendly
def preview(ctx: click.Context, issue: Path, host: str, port: int, as_address: str | None) -> None:
    """Serve a page with ISSUE at desktop and phone widths and its text part; reloads on save."""

    from .compose.issue import issue_key
    from .web.preview import create_app

    issue_key(issue)  # a missing file stops here; a broken one is shown on the page until fixed
    settings_from(ctx)
    sock = _listen(host, port)
    out.print(f"preview of {issue} at http://{host}:{port}/ (Ctrl+C to stop)")
    _serve_app(create_app(issue, ctx.obj.get("config"), as_address), sock, "warning")


def _writable_target(path: Path) -> None:
    """An output file the user named: its folder must exist, and it must not be a folder."""
    if path.is_dir():
        raise UserInputError("is a folder: give a file name to write", file=path)
    if not path.parent.is_dir():
        raise UserInputError(f"the folder {path.parent} does not exist: create it first", file=path)


NO_BOM = click.option(
    "--no-bom", is_flag=True, help="Leave out the byte-order mark (spreadsheets need it to read accents right)."
)


@contextmanager
def csv_output(path: Path | None, no_bom: bool) -> Iterator[TextIO]:
    """Where an export goes: a file in UTF-8 with a byte-order mark (without it Excel reads Zoë as
    ZoÃ«) unless --no-bom; or stdout, with the mark only when it is not a terminal."""
    if path is None:
        if not no_bom and not sys.stdout.isatty():
            sys.stdout.write("\ufeff")
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8" if no_bom else "utf-8-sig", newline="") as handle:
        yield handle


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UserInputError(f"--port must be between 1 and 65535, not {port}")


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port or a wrong --host is one line."""
    _check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserInputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): is another server on it? choose another --port"
        ) from None
    return sock


def _serve_app(app: Any, sock: socket.socket, log_level: str, **options: Any) -> None:
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level=log_level, **options)).run(sockets=[sock])


def ask_yes(question: str) -> bool:
    """A yes/no question on the terminal, no by default; Ctrl+C while it waits is a no that
    interrupted (SendDeclined), not click's "Aborted!"."""
    click.echo(f"{question} [y/N]: ", nl=False)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        click.echo()
        raise SendDeclined(interrupted=True) from None
    return answer.strip().lower() in ("y", "yes")


class ConsoleSendUI:
    """What a send shows on the terminal: findings, the pre-flight, a confirmation, a progress bar."""

    def __init__(self, yes: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.yes = yes
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

    def findings(self, findings: Sequence[Finding], forced: bool) -> None:
        print_findings(findings, err)
        if forced:
            err.print("[yellow]sending despite errors (--force)[/]")

    def preflight(self, preflight: Preflight) -> None:
        print_preflight(preflight)

    def confirm(self, confirmation: Confirmation) -> None:
        if not self.yes:
            if not sys.stdin.isatty():
                raise click.UsageError("not asking for confirmation without a terminal: add --yes to send")
            c = confirmation
            by = f" with {c.workers} workers" if c.workers > 1 else ""
            question = (
                f"Join the running send of {c.issue}, subject {c.subject!r} ({plural(c.recipients, 'recipient')} "
                f"left), through {c.destination}{by}?"
                if c.joining
                else f"Send {c.issue}, subject {c.subject!r}, to {plural(c.recipients, 'recipient')} through "
                f"{c.destination}{by}?"
            )
            if not ask_yes(question):
                raise SendDeclined
        if confirmation.outbox is not None:
            out.print(
                f"no SMTP host is configured: delivering through a built-in SMTP server on loopback "
                f"into {confirmation.outbox}/ (a Maildir, and each message as a numbered .eml file)"
            )

    def started(self, total: int) -> None:
        self.started_at = time.monotonic()
        self.bar.update(self.task, total=total)
        self.bar.start()

    def finished_one(self, address: str, result: Result | None) -> None:
        if result is None:
            self.skipped += 1
        elif result.kind.value == "sent":
            self.sent += 1
        else:
            self.failed += 1
            self.bar.console.print(f"[red]failed[/] {escape(address)}: {escape(str(result))}")
        rate = self.sent / max(time.monotonic() - self.started_at, 1e-6)
        self.bar.update(self.task, advance=1, detail=f"sent {self.sent}, failed {self.failed}, {rate:.0f}/s")

    def retrying(self, address: str, result: Result, delay: float) -> None:
        self.bar.console.print(f"[yellow]will retry[/] {escape(address)} in {delay:.0f}s: {escape(str(result))}")

    def overall(self, done: int) -> None:
        rate = done / max(time.monotonic() - self.started_at, 1e-6)
        self.bar.update(self.task, completed=done, detail=f"{done} done by all workers, {rate:.0f}/s")

    def stop(self) -> None:
        self.bar.stop()


def print_preflight(p: Preflight) -> None:
    from rich.table import Table

    table = Table(title=f"Pre-flight: {p.issue} to {p.subscribers}", show_header=False, title_justify="left")
    table.add_row("to send now", f"[bold]{p.to_send}[/]")
    table.add_row("in the list: from the CSV", str(p.from_csv))
    table.add_row("in the list: confirmed signups (not in the CSV)", str(p.from_signups))
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
    if p.where:
        table.add_row(f"left for another run (not matched by --where {p.where})", str(p.held))
    if p.paused:
        table.add_row("paused by the reader", str(p.paused))
    out.print(table)
    print_variants(p.variants)
    for problem in p.problems[:20]:
        err.print(problem, markup=False)
    hidden = len(p.problems) - 20 + p.more_problems
    if hidden > 0:
        err.print(f"... and {hidden} more skipped rows (`newsletter subscribers check` lists them)")


def print_variants(variants: Sequence[VariantCount]) -> None:
    """How many readers get each variant of an issue with conditions, and the largest one's size."""
    for count in variants:
        out.print(
            f"  {plural(count.readers, 'reader')} {'gets' if count.readers == 1 else 'get'} the issue "
            f"{escape(count.shows)} "
            f"({count.html_bytes / 1024:.0f} KB)"
        )
    if variants:
        largest = max(variants, key=lambda c: c.html_bytes)
        out.print(f"  {plural(len(variants), 'variant')}; the largest is {largest.html_bytes / 1024:.0f} KB of HTML")


def print_test_send(result: TestSend) -> int:
    failed = False
    for address, outcome in result.results:
        ok = outcome.kind.value == "sent"
        failed |= not ok
        out.print(f"{'sent' if ok else '[red]failed[/]'} test to {escape(address)}: {escape(str(outcome))}")
    if result.outbox:
        out.print(
            f"no SMTP host is configured: the test went to the local outbox {result.outbox}/ "
            "(open the newest .eml file with a mail client)"
        )
    return EXIT_FINDINGS if failed else 0


def print_dry_run(report: DryRun) -> int:
    for problem in report.problems[:20]:
        err.print(problem, markup=False)
    out.print(
        f"dry run: built {plural(report.built, 'message')} ({report.octets / 1e6:.1f} MB), sent none; "
        f"skipped {report.invalid} invalid, {report.duplicates} duplicate, "
        f"{report.suppressed} unsubscribed, {report.already_sent} already sent"
        + (f", {report.paused} paused by the reader" if report.paused else "")
    )
    for line in report.languages:  # with translations: each language's readers, and who falls back
        out.print(f"  {line}", markup=False, highlight=False)
    print_variants(report.variants)
    return 0


def print_campaign(outcome: CampaignOutcome, issue: Path) -> int:
    summary = outcome.summary
    if summary is None:
        out.print("nothing to send")
        return EXIT_FINDINGS if outcome.preflight.failed else 0
    out.print(
        f"sent {summary.sent}, failed {summary.failed}, skipped as unsubscribed or bounced {summary.suppressed}, "
        + (f"paused by the reader during the send {summary.set_aside}, " if summary.set_aside else "")
        + f"in {summary.elapsed:.1f}s"
    )
    if summary.possibly_duplicated_total:
        out.print(
            f"[yellow]possibly duplicated: {summary.possibly_duplicated} this run, "
            f"{summary.possibly_duplicated_total} for this issue so far[/] (in flight when a run stopped, or no "
            "readable reply after the message was sent; same Message-ID)"
        )
    if summary.left_pending:
        out.print(f"[yellow]{summary.left_pending} still to send[/]: run the same command again to resume")
    if summary.failed:
        for address, reason in summary.failures[:10]:  # who could not be mailed, and why
            out.print(f"  failed: {escape(address)}: {escape(reason)}")
        out.print(f"`newsletter status {issue}` lists the failures; `--retry-failed` tries them again")
    for note in summary.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    return EXIT_FINDINGS if summary.failed or summary.left_pending else 0


def print_send_result(result: SendResult, issue: Path) -> int:
    """Print what a send did; returns the exit code."""
    from .send.trial import DryRun, TestSend

    if isinstance(result, DryRun):
        return print_dry_run(result)
    if result.staged:
        out.print(f"copied {plural(result.staged, 'image')} of the issue into the web archive", markup=False)
    if isinstance(result, TestSend):
        return print_test_send(result)
    code = print_campaign(result, issue)
    if result.publish_error:
        err.print(
            f"warning: the issue was sent, but the web archive was not written: {result.publish_error}", markup=False
        )
        err.print("fix that, then run `newsletter publish`", markup=False)
    if result.published is not None:
        print_published(result.published)
    return code


@main.command(short_help="Send ISSUE: a test, a dry run, or to all.")
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
@click.option(
    "--as",
    "as_address",
    metavar="ADDRESS",
    help="With --dry-run: print the message ADDRESS would get; with --test: send it.",
)
@click.option("--retry-failed", is_flag=True, help="Try the recipients that failed before again.")
@click.option("--concurrency", type=click.IntRange(1, 200), help="Parallel SMTP connections (per worker).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Sender processes on this machine."
)
@click.option("--join", is_flag=True, help="Help a send of ISSUE that is running (same store, same file).")
@click.option("--rate", type=click.FloatRange(0), help="Messages per second (0: no limit).")
@click.option("--force", is_flag=True, help="Send even if the pre-send check finds errors.")
@click.option("--new-database", is_flag=True, help="Start a new journal though this workspace has sent before.")
@click.option("--where", metavar="CONDITION", default="", help='Send only to readers it matches: branch == "North".')
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
    new_database: bool,
    as_address: str | None,
    workers: int,
    join: bool,
    where: str,
) -> None:
    """Send ISSUE: a test with --test, otherwise to every subscriber (or those --where matches), resumably."""
    from .app.send_campaign import SendRequest, send_issue

    _refuse_option_mixes(to=bool(to), test=test, dry_run=dry_run, as_address=bool(as_address), join=join or bool(where))
    if join and (subscribers or retry_failed or new_database or where):
        raise click.UsageError(JOIN_ALONE)
    if as_address and dry_run:
        from .app.reader import reader_message

        click.echo(reader_message(issue, settings_from(ctx), as_address, subscribers), nl=False)
        return
    options = (dry_run, subscribers, retry_failed, force, concurrency, rate, new_database, workers, join)
    request = SendRequest(issue, test, to, *options, where=where, as_reader=as_address or "")
    try:
        result = send_issue(request, settings_from(ctx), ConsoleSendUI(yes))
    except SendInterrupted as exc:
        err.print(f"{exc}\nresume with: {resume_command(ctx, issue, subscribers)}", markup=False)
        sys.exit(EXIT_INTERRUPTED)
    except SendDeclined as exc:
        err.print(str(exc), markup=False)
        sys.exit(EXIT_INTERRUPTED if exc.interrupted else EXIT_FINDINGS)
    sys.exit(print_send_result(result, issue))


def print_published(result: PublishResult) -> None:
    out.print(
        f"published {plural(len(result.issues), 'issue')} to {result.out_dir}/: {result.written} file(s) written, "
        f"{result.unchanged} unchanged, {result.removed} removed",
        markup=False,
    )
    for key in result.missing:
        err.print(
            f"note: {key} was sent, but {result.issues_folder / key}.md is not there: not published "
            "(the archive holds the sent issues of [publish] issues)",
            markup=False,
        )


@main.command(short_help="Write the web archive of the sent issues.")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="The site's folder (default: [publish] out, site/).",
)
@click.pass_context
@friendly
def publish(ctx: click.Context, out_dir: Path | None) -> None:
    """Write every sent issue as a web page, the archive's index and its Atom feed into a folder
    any static host (or `newsletter serve`) can serve. Nothing personal is written."""
    from .app.publish_archive import publish_archive

    print_published(publish_archive(settings_from(ctx), out_dir))


JOIN_ALONE = (
    "--join helps a running send: it goes without --test, --dry-run, --subscribers, "
    "--retry-failed, --new-database and --where (the send that runs has its list); --where goes "
    "with a send to the list, not with --test or --dry-run"
)


def _refuse_option_mixes(*, to: bool, test: bool, dry_run: bool, as_address: bool, join: bool) -> None:
    """Options of ``send`` that make no sense together: a usage error, before anything is read."""
    if to and not test:
        raise click.UsageError("--to goes with --test")
    if as_address and not (dry_run or test):
        raise click.UsageError("--as goes with --dry-run (print that reader's message) or --test (send it)")
    if join and (test or dry_run):
        raise click.UsageError(JOIN_ALONE)


def resume_command(ctx: click.Context, issue: Path, subscribers: Path | None) -> str:
    """The command line that picks up an interrupted send where it stopped."""
    import shlex

    config: Path | None = ctx.obj.get("config")
    words = ["newsletter", *(["--config", str(config)] if config else []), "send", str(issue)]
    words += ["--subscribers", str(subscribers)] if subscribers else []
    return shlex.join(words)


@main.command(short_help="Every issue at a glance, or one in detail.")
@click.argument("issue", required=False)
@click.option("--workers", "show_workers", is_flag=True, help="With ISSUE: each sender process and its rate.")
@click.pass_context
@friendly
def status(ctx: click.Context, issue: str | None, show_workers: bool) -> None:
    """With no ISSUE, every issue sent, newest first, with its counts; with ISSUE (a stem such as
    2027-01 or the issue file), its counts, every failure with its SMTP reply, and its bounce reports."""
    from .app.status import issue_detail, issue_of, overview

    settings = settings_from(ctx)
    if issue is None:
        if show_workers:
            raise click.UsageError("--workers goes with ISSUE")
        print_overview(overview(settings))
        return
    print_issue_detail(issue_detail(settings, issue_of(issue)), show_workers)


def print_overview(lines: Sequence[IssueLine]) -> None:
    if not lines:
        out.print("nothing sent yet")
        return
    for line in lines:
        day = time.strftime("%Y-%m-%d", time.localtime(line.started))
        left = f", {line.pending} still to send" if line.pending else ""
        out.print(
            f"{line.issue}  {day}  sent {line.sent}, failed {line.failed}, possibly duplicated "
            f"{line.possibly_duplicated}, bounced {line.bounced}, complained {line.complained}, "
            f"unsubscribed since {line.unsubscribed_since}{left}",
            markup=False,
        )


def print_issue_detail(detail: IssueDetail, show_workers: bool) -> None:
    report, counts = detail.report, detail.report.counts
    if detail.nothing:
        out.print(f"{report.issue}: nothing sent yet", markup=False)
        return
    reasons = "".join(f", skipped as {reason} {n}" for reason, n in detail.skipped.items())
    out.print(
        f"{report.issue}: sent {counts['sent']}, pending {counts['pending']}, failed {counts['failed']}"
        f"{reasons}, no longer in the list {counts['removed']}, "
        f"in flight {counts['sending']}, possibly duplicated {counts['resent']}",
        markup=False,
    )
    for started, where in detail.runs:
        day = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
        out.print(f"run {day}: {'--where ' + where if where else 'the whole list'}", markup=False)
    if counts["held"]:
        out.print(f"left out by --where so far (not sent): {counts['held']}", markup=False)
    if counts["paused"]:
        out.print(f"paused by the reader (not sent): {counts['paused']}", markup=False)
    for failure in report.failures:
        out.print(f"failed {failure.address} after {failure.attempts} attempt(s): {failure.reply}", markup=False)
    for b in detail.bounced:
        said = " ".join(p for p in (b.status, b.diagnostic) if p)
        out.print(f"bounce report: {b.category} for {b.address}, {b.action}; {said}".rstrip("; "), markup=False)
    for w in detail.workers if show_workers else ():
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(w.last_seen))
        out.print(
            f"worker {w.worker} on {w.host} (pid {w.pid}): sent {w.sent}, {w.rate:.1f} msg/s, last seen {seen}",
            markup=False,
        )


@main.command(short_help="Serve the readers' pages: unsubscribe, sign up, confirm, the web archive.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
@friendly
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the pages readers reach from a message or your website: unsubscribe (a confirmation
    page, RFC 8058 one-click, subscribe again), the signup form (/subscribe) and its confirmation
    links (/confirm/TOKEN), /healthz, and the web archive `newsletter publish` writes (at /).
    `newsletter preview` serves the preview of an issue."""

    from .web.unsubscribe import create_app

    settings = settings_from(ctx)
    sock = _listen(host, port)
    out.print(
        f"pages for {settings.newsletter.name} (unsubscribe, /subscribe, /confirm) on http://{host}:{port}/ "
        f"(links point to {settings.newsletter.base_url}); the web archive from {settings.path(settings.publish.out)}/",
        markup=False,
    )
    # uvicorn's own proxy headers would trust X-Forwarded-For from any loopback peer: the pages
    # read it themselves, from [serve] trusted_proxies only (web/visitors.py).
    _serve_app(create_app(settings), sock, "info", proxy_headers=False)


@main.command(short_help="Put ADDRESS on the suppression list.")
@click.argument("address", required=False)
@click.option("--token", help="An unsubscribe link's token instead of ADDRESS (to replay one `serve` logged).")
@click.option(
    "--reason",
    default="unsubscribed",
    show_default=True,
    help="unsubscribed, bounced, complained or manual (other words: a manual one, the words its note).",
)
@click.option("--note", default="", help='Free text kept beside the reason ("asked by phone").')
@click.pass_context
@friendly
def unsubscribe(ctx: click.Context, address: str | None, token: str | None, reason: str, note: str) -> None:
    """Put ADDRESS on the suppression list: no send mails it again."""
    from .app.unsubscribe import suppress_address
    from .app.unsubscribe import unsubscribe as by_token
    from .errors import TokenError

    settings = settings_from(ctx)
    if (address is None) == (token is None):
        raise click.UsageError("give ADDRESS or --token TOKEN")
    if token is None:
        done = suppress_address(settings, address or "", reason, note)
        added, shown, why = done.added, done.address, done.reason
    else:
        try:
            replayed = by_token(settings, token, "replayed token")
        except TokenError:
            raise UserInputError("--token: not a valid unsubscribe token for this list") from None
        if replayed.test:
            raise UserInputError("--token: a test copy's token changes nothing")
        added, shown, why = replayed.added, replayed.address, replayed.reason
    out.print(f"{shown} {'suppressed' if added else 'was already suppressed'} ({why})", markup=False)


@main.group(short_help="Export, import or remove suppressed addresses.")
def suppressions() -> None:
    """Export, import or remove addresses from the suppression list."""


@suppressions.command("export", short_help="Write the suppression list as CSV.")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False), default="-")
@click.option("--all", "everything", is_flag=True, help="Also the addresses taken off the list, with when and why.")
@NO_BOM
@click.pass_context
@friendly
def suppressions_export(ctx: click.Context, csv_path: Path, everything: bool, no_bom: bool) -> None:
    """Write the suppression list as CSV (email, reason, source, created, note) to CSV_PATH or stdout."""
    from .app.suppressions import export_suppressions

    target = None if str(csv_path) == "-" else csv_path
    if target is not None:
        _writable_target(target)
    count = export_suppressions(settings_from(ctx), csv_output(target, no_bom), removed=everything)
    err.print(f"exported {plural(count, 'suppressed address', 'suppressed addresses')}")


@suppressions.command("remove", short_help="Take addresses off the list.")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--note", default="", help="Why, kept with the record of the removal.")
@click.option("--reason", "old_note", default="", hidden=True)  # its name before --note; still taken
@click.pass_context
@friendly
def suppressions_remove(ctx: click.Context, addresses: tuple[str, ...], note: str, old_note: str) -> None:
    """Take ADDRESSES off the suppression list; `export --all` keeps showing who was removed and when."""
    from .app.suppressions import remove_suppressions

    for line in remove_suppressions(settings_from(ctx), addresses, note or old_note):
        out.print(line, markup=False)


@suppressions.command("import", short_help="Add the addresses of a CSV to the list.")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@friendly
def suppressions_import(ctx: click.Context, csv_path: Path) -> None:
    """Add every address in CSV_PATH (an email column, optional reason and note) to the suppression list."""
    from .app.suppressions import import_suppressions

    added, problems = import_suppressions(settings_from(ctx), csv_path)
    for problem in problems:
        err.print(problem, markup=False)
    out.print(f"imported {plural(added, 'new suppressed address', 'new suppressed addresses')}")


@main.group()
def subscribers() -> None:
    """Inspect a subscriber list."""


@subscribers.command("check", short_help="Bad and duplicate rows; who would be mailed.")
@click.argument("csv_path", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.pass_context
@friendly
def subscribers_check(ctx: click.Context, csv_path: Path | None) -> None:
    """Report invalid and duplicate rows of CSV_PATH and how many addresses would be mailed (confirmed
    signups included)."""
    from .app.subscribers import check_subscribers

    settings = settings_from(ctx)
    summary = check_subscribers(settings, csv_path or settings.path(settings.newsletter.subscribers))
    report, result = summary.check.report, summary.check
    for problem in report.problems:
        out.print(problem, markup=False)
    if report.more_problems:
        out.print(f"... and {report.more_problems} more")
    for line, warning in report.warnings:
        out.print(f"{report.path}:{line}: warning: {warning}", markup=False)
    out.print(f"names: {report.names_from}", markup=False)
    out.print(
        f"{plural(report.valid, 'valid address', 'valid addresses')}: {result.would_mail} would be mailed, "
        f"{result.suppressed} {'is' if result.suppressed == 1 else 'are'} unsubscribed or bounced; "
        f"skipped {report.invalid} invalid and {plural(report.duplicates, 'duplicate row')}"
    )
    if summary.signups:
        out.print(f"{plural(summary.signups, 'confirmed signup')} not in the CSV would be mailed too")
    sys.exit(EXIT_FINDINGS if report.invalid or report.duplicates else 0)


@main.group()
def dkim() -> None:
    """DKIM keys for signing."""


@dkim.command("keygen", short_help="A DKIM key pair and its DNS record.")
@click.option("--selector", help="DNS selector (default: newsletter, or newsletter-ed25519 for Ed25519).")
@click.option("--domain", help="Signing domain (default: the From address's domain).")
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Private key file (default: .newsletter/dkim-SELECTOR.pem, mode 0600).",
)
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519"]),
    default="rsa",
    show_default=True,
    help="RSA (every receiver checks it) or Ed25519 (RFC 8463, a second signature beside RSA).",
)
@click.option("--bits", type=click.Choice(["2048", "3072", "4096"]), help="RSA key size  [default: 2048]")
@click.pass_context
@friendly
def dkim_keygen(
    ctx: click.Context,
    selector: str | None,
    domain: str | None,
    out_path: Path | None,
    algorithm: str,
    bits: str | None,
) -> None:
    """Write a DKIM key pair and print the DNS TXT record to publish."""
    from .compose.dkim import generate_key, publish_instructions, write_key
    from .config import valid_selector
    from .errors import UserInputError

    if bits and algorithm != "rsa":
        raise UserInputError("--bits is for RSA keys: an Ed25519 key has one size")
    if selector is None:
        selector = "newsletter-ed25519" if algorithm == "ed25519" else "newsletter"
    if not valid_selector(selector):
        raise UserInputError(
            f"--selector must be a DNS label (letters, digits and hyphens, dots between labels), not {selector!r}"
        )
    settings = settings_from(ctx)
    domain = domain or settings.newsletter.from_domain
    path = out_path or settings.state_dir / f"dkim-{selector}.pem"
    if path.exists():
        raise UserInputError("a key already exists there; choose another --out or --selector", file=path)
    pair = generate_key(selector, domain, int(bits or 2048), algorithm)
    write_key(pair, path)
    out.print(f"wrote the private key to {path} (mode 0600; keep it out of version control)\n", markup=False)
    relative = path.relative_to(settings.workspace) if path.is_relative_to(settings.workspace) else path
    out.print(publish_instructions(pair, selector, str(relative), algorithm), markup=False)


@main.command(short_help="Process delivery reports (bounces).")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
@friendly
def bounces(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Process delivery reports from PATHS (files, mbox, Maildir) or, with none, the [bounces] IMAP folder."""
    from .app.bounces import process_bounces

    outcomes = process_bounces(settings_from(ctx), paths)
    for o in outcomes:
        who = f"{o.address} ({o.issue or 'issue unknown'})" if o.address else "no recipient of ours"
        detail = " ".join(p for p in (o.report.status, o.report.diagnostic) if p)
        out.print(
            f"{o.source}: {o.report.category.value}, {who}: {o.action.value}; {detail}".rstrip("; "), markup=False
        )
    counts = {
        a: sum(o.action.value == a for o in outcomes)
        for a in ("suppressed", "counted", "ignored", "unrecognised", "duplicate", "unverified", "quarantined")
    }
    out.print(f"{len(outcomes)} message(s): " + ", ".join(f"{n} {a}" for a, n in counts.items()), markup=False)


@subscribers.command("export", short_help="The list a send uses, with consent.")
@click.option(
    "-o", "--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), help="CSV file (default: stdout)."
)
@NO_BOM
@click.pass_context
@friendly
def subscribers_export(ctx: click.Context, out_path: Path | None, no_bom: bool) -> None:
    """Write the list a send would use: the CSV plus confirmed signups, minus suppressions, with consent columns."""
    from .app.subscribers import export_subscribers

    if out_path is not None:
        _writable_target(out_path)
    count = export_subscribers(settings_from(ctx), csv_output(out_path, no_bom))
    err.print(f"exported {count} subscribers", markup=False)


@main.command("signup-form", short_help="An HTML signup form for your website.")
@click.pass_context
@friendly
def signup_form(ctx: click.Context) -> None:
    """Print an HTML signup form for your own website; it posts to the signup page of `serve`."""
    from .audience.signup import form_html
    from .compose.i18n import language_name

    settings = settings_from(ctx)
    action = f"{settings.newsletter.base_url.rstrip('/')}/subscribe"
    languages = [(tag, language_name(tag)) for tag in settings.newsletter.offered_languages]
    topics = settings.preferences.topics if settings.preferences.enabled else ()
    form = form_html(action, settings.signup.fields, languages=languages, topics=topics)
    out.print(form, markup=False, highlight=False)


@main.group(short_help="The store: SQLite or PostgreSQL.")
def store() -> None:
    """The store that holds the state: journal, suppressions, signups, bounce reports (SQLite or PostgreSQL)."""


@store.command("migrate", short_help="Bring the store's schema up to date.")
@click.pass_context
@friendly
def store_migrate(ctx: click.Context) -> None:
    """Bring the store's schema up to this version of newsletter-mailer."""
    from .app.store_admin import migrate

    done = migrate(settings_from(ctx))
    what = "already at" if done.before == done.after else f"migrated from version {done.before} to"
    out.print(f"store {done.where}: {what} schema version {done.after}", markup=False)


@store.command("copy", short_help="Copy SQLite state into PostgreSQL.")
@click.option(
    "--to", "to", required=True, help="postgresql://user@host/database (password: NEWSLETTER_STORE_PASSWORD)."
)
@click.pass_context
@friendly
def store_copy(ctx: click.Context, to: str) -> None:
    """Copy this workspace's SQLite state (journal, suppressions, signups, bounce reports) into the store at --to."""
    import os

    from .app.store_admin import copy_to

    print_copy(copy_to(settings_from(ctx), to, os.environ.get("NEWSLETTER_STORE_PASSWORD", "")))


def print_copy(done: Copied) -> None:
    report, before, after = done.report, done.migrated.before, done.migrated.after
    if before != after:
        out.print(f"{done.where}: schema migrated from version {before} to {after}", markup=False)
    issues = f" ({', '.join(report.issues)})" if report.issues else ""
    journal = plural(report.journal.copied, report.journal.one, report.journal.many)
    out.print(
        f"copied to {done.where}: {journal} of {len(report.issues)} issue(s){issues}, "
        + ", ".join(plural(part.copied, part.one, part.many) for part in report.state)
        + "; already there and left as they were: "
        + ", ".join(plural(part.skipped, part.one, part.many) for part in (report.journal, *report.state)),
        markup=False,
    )
    if report.renumbered:
        err.print(
            f"warning: the target already used the numbers of {plural(report.renumbered, 'journal row')}, which "
            "got new ones: a bounce of a message sent to them before the copy may be matched by its VERP "
            "address to another recipient; check the bounce reports `status` shows for those issues",
            markup=False,
        )
    out.print("to use it, set in newsletter.toml (and the password in NEWSLETTER_STORE_PASSWORD):", markup=False)
    out.print(f'[store]\nurl = "{done.url}"', markup=False)


def run() -> None:
    """The `newsletter` command: click's own handling, except that Ctrl+C before a command's own
    handler is in place (while it starts) says "interrupted" and exits 130 like any other Ctrl+C,
    instead of click's "Aborted!" and 1."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        err.print("Aborted!")
        sys.exit(1)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
