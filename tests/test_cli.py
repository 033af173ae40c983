"""cli.py end to end: the real command in a subprocess, as an editor runs it."""

from __future__ import annotations

import email
import subprocess
import sys
from email import policy
from pathlib import Path

from conftest import write_issue


def run(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_render_check_on_a_fresh_workspace(tmp_path: Path) -> None:
    result = run("init", "ws", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ws = tmp_path / "ws"
    assert (ws / "newsletter.toml").is_file() and (ws / "templates" / "newsletter.mjml").is_file()
    result = run("render", "issues/example.md", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "HTML size:" in result.stdout
    for suffix in ("html", "txt", "eml"):
        assert (ws / "build" / f"example.{suffix}").stat().st_size > 1000
    message = email.message_from_bytes((ws / "build" / "example.eml").read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    result = run("check", "issues/example.md", cwd=ws)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("init", "ws", cwd=tmp_path).returncode == 0
    result = run("init", "ws", cwd=tmp_path)
    assert result.returncode == 2 and "would overwrite" in result.stderr


def test_check_reports_each_problem_with_its_line_and_exits_1(tmp_path: Path) -> None:
    write_issue(
        tmp_path,
        "subject: S",
        "Intro\n\n## One\n\n![](https://example.org/a.png)\n\n[relative](/page) and [fine](https://example.org/)\n",
    )
    result = run("check", "issue.md", cwd=tmp_path)
    assert result.returncode == 1
    expected = "issue.md:8: error: image https://example.org/a.png has no alt text: write ![what it shows](url)"
    assert expected in result.stdout
    assert "issue.md:10: error: link '/page' is not an absolute URL" in result.stdout


def test_user_errors_print_one_line_and_no_traceback(tmp_path: Path) -> None:
    write_issue(tmp_path, "subject: S\nauthor: me")
    for args in (["render", "issue.md"], ["render", "missing.md"], ["--config", "nope.toml", "render", "issue.md"]):
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error:") or "error:" in result.stderr
    result = run("render", "issue.md", cwd=tmp_path)
    assert "issue.md:3: error: unknown key 'author'" in result.stderr


def test_missing_settings_are_said_once(tmp_path: Path) -> None:
    write_issue(tmp_path, "subject: S", "Hello\n")
    result = run("render", "issue.md", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.count("using defaults") == 1


def test_send_refuses_without_a_terminal_unless_yes_then_sends_and_reports(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        refused = run("send", "issue.md", cwd=root)
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert server.handler.messages == []
        sent = run("send", "issue.md", "--yes", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "to send now" in sent.stdout and "sent 5, failed 0" in sent.stdout
        assert len(server.handler.messages) == 5
        status = run("status", "issue.md", cwd=root)
        assert "sent 5, pending 0, failed 0" in status.stdout
        test = run("send", "issue.md", "--test", "--to", "anyone@example.net", cwd=root)
        assert test.returncode == 0 and "sent test to anyone@example.net" in test.stdout
        assert server.handler.messages[-1].rcpt_tos == ("anyone@example.net",)
        dry = run("send", "issue.md", "--dry-run", cwd=root)
        assert "built 0 messages" in dry.stdout and "5 already sent" in dry.stdout
        assert len(server.handler.messages) == 6


def test_status_lists_failures_with_their_reply(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import Faults, SMTPTestServer

    with SMTPTestServer(Faults(reject=frozenset({"user1@example.org"}))) as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        result = run("send", "issue.md", "--yes", cwd=root)
    assert result.returncode == 1 and "sent 2, failed 1" in result.stdout
    status = run("status", "issue.md", cwd=root)
    assert "failed user1@example.org after 1 attempt(s): 550 5.1.1" in status.stdout


def test_send_with_unreachable_relay_is_one_clear_line(tmp_path: Path) -> None:
    from conftest import free_port, make_workspace

    root = make_workspace(tmp_path / "ws", free_port(), 2)
    result = run("send", "issue.md", "--yes", cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot connect to the SMTP server" in result.stderr
