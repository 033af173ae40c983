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

from .config import Settings, load_settings
from .errors import NewsletterError
from .render import SIZE_WARNING_BYTES

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
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def settings_from(ctx: click.Context) -> Settings:
    config: Path | None = ctx.obj.get("config")
    settings = load_settings(config)
    if not settings.found and not ctx.obj.get("said_defaults"):
        err.print(f"note: no {settings.config_path.name} in {settings.workspace}: using defaults "
                  "(`newsletter init` writes one)", markup=False)
        ctx.obj["said_defaults"] = True
    return settings


@click.group()
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False),
              help="Settings file (default: ./newsletter.toml).")
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
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("build"), show_default=True, help="Where to write .html, .txt and .eml.")
@click.pass_context
@friendly
def render(ctx: click.Context, issue: Path, out_dir: Path) -> None:
    """Render ISSUE to HTML, plain text and a complete .eml message."""
    from .artifacts import write_files
    from .issue import read_issue
    from .render import render_issue

    settings = settings_from(ctx)
    files = write_files(render_issue(read_issue(issue), settings), settings, out_dir)
    for path in (files.html, files.text, files.eml):
        out.print(f"wrote {path}")
    size = f"HTML size: {files.html_bytes / 1024:.1f} KB"
    if files.html_bytes >= SIZE_WARNING_BYTES:
        err.print(f"[yellow]warning:[/] {size}: Gmail clips messages from about 102 KB")
    else:
        out.print(f"{size} (Gmail clips from about 102 KB)")


@main.command()
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@friendly
def check(ctx: click.Context, issue: Path) -> None:
    """List every problem in ISSUE as file:line: level: message; exit 1 on any error."""
    from .check import check_issue, has_errors

    findings = check_issue(issue, settings_from(ctx))
    for finding in findings:
        colour = "red" if finding.level == "error" else "yellow"
        out.print(f"[{colour}]{escape(str(finding))}[/]")
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

    from .preview import create_app

    settings_from(ctx)
    out.print(f"preview of {issue} at http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(create_app(issue, ctx.obj.get("config")), host=host, port=port, log_level="warning")
