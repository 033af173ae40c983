"""cli.py end to end: the real command in a subprocess, as an editor runs it."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

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
    assert "issue.md:3: unknown key 'author'" in result.stderr


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


def test_send_prints_the_issues_running_total_of_possibly_duplicated_and_status_tells_reasons_apart(
    tmp_path: Path,
) -> None:
    from conftest import make_workspace
    from smtp_servers import RawSMTPServer, Script

    with RawSMTPServer(Script(replies={"END": b"\x1b[2Jgarbage\r\n"}, end_times=1)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        assert run("unsubscribe", "user1@example.org", cwd=root).returncode == 0
        assert run("unsubscribe", "user3@example.org", "--reason", "bounced", cwd=root).returncode == 0
        first = run("send", "issue.md", "--yes", cwd=root)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "possibly duplicated: 1 this run, 1 for this issue so far" in first.stdout
        assert "\x1b" not in first.stdout + first.stderr
        with (root / "subscribers.csv").open("a") as csv:
            csv.write("user5@example.org,User 5\n")
        second = run("send", "issue.md", "--yes", cwd=root)
        assert "sent 1, failed 0" in second.stdout
        assert "possibly duplicated: 0 this run, 1 for this issue so far" in second.stdout
    status = run("status", "issue.md", cwd=root).stdout
    assert "skipped as bounced 1, skipped as unsubscribed 1" in status and "possibly duplicated 1" in status


# Environment faults: one line, a non-zero exit, no traceback.


def read_only(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a private mount namespace where the workspace is a read-only bind mount."""
    import shlex
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only mount needs root and unshare(1) (a chmod does not stop root)")
    command = shlex.join([sys.executable, "-m", "newsletter_mailer", *args])
    where = shlex.quote(str(root))
    script = f"mount --bind -o ro {where} {where} && cd {where} && exec {command}"  # cd: into the mount
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()}")
    return result


@pytest.mark.parametrize(
    "args",
    [("render", "issue.md"), ("send", "issue.md", "--yes"), ("unsubscribe", "a@example.org")],
)
def test_a_read_only_workspace_is_one_clear_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 1, 2)
    result = read_only(root, *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is the workspace read-only?" in result.stderr
    assert read_only(root, "check", "issue.md").returncode == 0  # reading needs no writing


def test_a_corrupted_database_and_a_missing_export_folder_are_one_clear_line(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 1, 2)
    assert run("unsubscribe", "a@example.org", cwd=root).returncode == 0
    missing = run("suppressions", "export", "no/such/folder/out.csv", cwd=root)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no/such/folder/out.csv: No such file or directory" in missing.stderr
    (root / ".newsletter" / "newsletter.db").write_bytes(b"this is not SQLite " * 500)
    for args in (("status", "issue.md"), ("unsubscribe", "b@example.org"), ("send", "issue.md", "--yes")):
        broken = run(*args, cwd=root)
        assert broken.returncode == 1 and "Traceback" not in broken.stderr, broken.stderr
        assert "the workspace database is damaged" in broken.stderr
        assert [line for line in broken.stderr.splitlines() if line.startswith("error:")] == [
            "error: the workspace database is damaged (file is not a database); restore "
            ".newsletter/newsletter.db from a backup"
        ]
