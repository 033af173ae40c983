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


def run(
    *args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=cwd,
        input=input,
        env=env,
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
    text = (ws / "build" / "example.txt").read_text(encoding="utf-8")
    assert "[Image: Volunteers mending a bicycle at a long table]\nOur first trial run in October\n" in text
    message = email.message_from_bytes((ws / "build" / "example.eml").read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    result = run("check", "issues/example.md", cwd=ws)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout


def test_init_takes_the_organisation_and_writes_the_list_the_send_uses(tmp_path: Path) -> None:
    from newsletter_mailer.config import load_settings

    hostile = 'Riverton "Walkers" \\ Co'
    result = run(
        "init",
        "river-news",
        "--name",
        hostile,
        "--from",
        "news@river.example.net",
        "--base-url",
        "https://news.river.example.net/",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "next: `cd river-news`, then" in result.stdout
    ws = tmp_path / "river-news"
    text = (ws / "newsletter.toml").read_text()
    assert "Riverside" not in text and ".example" not in text.split("[smtp]")[0].replace("river.example.net", "")
    settings = load_settings(workspace=ws)
    news = settings.newsletter
    assert (news.name, news.from_, news.base_url) == (
        hostile,
        "news@river.example.net",
        "https://news.river.example.net",
    )
    assert news.test_recipients == ("news@river.example.net",)
    assert settings.path(news.subscribers) == ws / "subscribers.csv" and (ws / "subscribers.csv").is_file()
    sent = run("send", "issues/example.md", "--yes", cwd=ws)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"Pre-flight: example to {ws / 'subscribers.csv'}" in sent.stdout and "sent 6, failed 0" in sent.stdout
    assert len(list((ws / "outbox").glob("*.eml"))) == 6
    bad = run("init", "other", "--from", "not an address", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: the From address must be an email address")
    assert not (tmp_path / "other").exists()
    here = tmp_path / "here"
    here.mkdir()
    defaults = run("init", cwd=here)
    assert defaults.returncode == 0 and "cd " not in defaults.stdout
    assert load_settings(workspace=here).newsletter.name == "Here"


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
        assert run("status", "issue", cwd=root).stdout == "issue: nothing sent yet\n"  # nothing left pending
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


def test_a_missing_issue_file_is_one_line_and_exit_2_for_every_command(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 9, 1)
    for command in (
        ["send", "nope.md"],
        ["send", "nope.md", "--force", "--yes"],
        ["send", "nope.md", "--test"],
        ["send", "nope.md", "--dry-run"],
        ["render", "nope.md"],
        ["check", "nope.md"],
        ["preview", "nope.md", "--port", "9"],
    ):
        result = run(*command, cwd=root)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], (command, result.stderr)
        assert lines[0] == "nope.md: error: issue file not found"
        assert "--force" not in result.stderr and "preview of" not in result.stdout
    assert not (root / ".newsletter" / "newsletter.db").exists()


def test_a_bad_to_address_blames_the_command_line(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 9, 1)
    result = run("send", "issue.md", "--test", "--to", "not-an-address", cwd=root)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --to 'not-an-address' is not a valid address")
    assert "newsletter.toml" not in result.stderr
    (root / "newsletter.toml").write_text(
        (root / "newsletter.toml").read_text().replace('["editor@example.org"]', '["editor at example"]')
    )
    result = run("send", "issue.md", "--test", cwd=root)
    assert result.returncode == 2
    assert "newsletter.toml: error: [newsletter] test_recipients: 'editor at example' is not a valid" in result.stderr


FRONT_WITH_THREE_MISTAKES = """subject: Walk news
highlihgts:
  - The ridge
events:
  - date: 2026-13-01
    title: Night walk
  - date: 2026-12-05
    time: "7pm"
"""


def test_every_front_matter_error_is_reported_at_once(tmp_path: Path) -> None:
    write_issue(tmp_path, FRONT_WITH_THREE_MISTAKES, "Hello\n")
    render = run("render", "issue.md", cwd=tmp_path)
    assert render.returncode == 2 and "Traceback" not in render.stderr
    expected = [
        "issue.md:3: error: unknown key 'highlihgts'; allowed keys: subject, preheader, date, highlights, "
        "events, signoff",
        "issue.md:6: error: event date must be an ISO date like 2026-11-18, not '2026-13-01'",
        "issue.md:8: error: event is missing 'title'",
        "issue.md:9: error: event time must look like 19:30 or 18:00-19:30, not '7pm'",
    ]
    assert [line for line in render.stderr.splitlines() if ": error: " in line] == expected
    check = run("check", "issue.md", cwd=tmp_path)
    assert check.returncode == 1
    for line in expected:
        assert line in check.stdout
    assert "4 error(s)" in check.stdout


def test_version_and_help_that_is_not_cut_short(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"newsletter, version {version('newsletter-mailer')}"
    for group in ([], ["suppressions"], ["subscribers"], ["dkim"]):
        shown = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *group, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "80"},
        )
        commands = shown.stdout.split("Commands:")[1]
        assert "..." not in commands, commands


def test_counts_are_worded_in_the_singular_and_the_stored_reason_is_shown(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 9, 1)
    assert "built 1 message (" in run("send", "issue.md", "--dry-run", cwd=root).stdout
    (root / "gone.csv").write_text("email\nuser0@example.org\n")
    assert "imported 1 new suppressed address\n" in run("suppressions", "import", "gone.csv", cwd=root).stdout
    again = run("unsubscribe", "user0@example.org", cwd=root)
    assert again.stdout.strip() == "user0@example.org was already suppressed (manual)"
    checked = run("subscribers", "check", cwd=root)
    assert "1 valid address: 0 would be mailed, 1 is unsubscribed or bounced" in checked.stdout
    assert "built 0 messages (" in run("send", "issue.md", "--dry-run", cwd=root).stdout


def test_the_confirmation_names_subject_destination_and_count(tmp_path: Path) -> None:
    import pty

    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md"],
            cwd=root,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"n\n")
        output, errors = process.communicate(timeout=120)
        os.close(controller)
        os.close(terminal)
        assert server.handler.messages == []
    prompt = (
        f"Send issue, subject 'Hello {{{{ subscriber.name }}}}', to 3 recipients through the SMTP relay "
        f"127.0.0.1:{server.port}? [y/N]"
    )
    assert prompt in output, output + errors
    assert process.returncode == 1 and "nothing sent" in errors


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
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "is the workspace read-only?" in result.stderr
    assert read_only(root, "check", "issue.md").returncode == 0  # reading needs no writing


def test_a_corrupted_database_and_a_missing_export_folder_are_one_clear_line(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 1, 2)
    assert run("unsubscribe", "a@example.org", cwd=root).returncode == 0
    missing = run("suppressions", "export", "no/such/folder/out.csv", cwd=root)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr  # the user's path: exit 2
    assert "no/such/folder/out.csv: error: the folder no/such/folder does not exist" in missing.stderr
    listed = run("subscribers", "export", "-o", "no/such/folder/list.csv", cwd=root)
    assert listed.returncode == 2 and "no/such/folder/list.csv: error: the folder" in listed.stderr
    (root / ".newsletter" / "newsletter.db").write_bytes(b"this is not SQLite " * 500)
    for args in (("status", "issue.md"), ("unsubscribe", "b@example.org"), ("send", "issue.md", "--yes")):
        broken = run(*args, cwd=root)
        assert broken.returncode == 1 and "Traceback" not in broken.stderr, broken.stderr
        assert "the workspace database is damaged" in broken.stderr
        assert [line for line in broken.stderr.splitlines() if line.startswith("error:")] == [
            "error: the workspace database is damaged (file is not a database); restore "
            ".newsletter/newsletter.db from a backup"
        ]


def test_a_database_locked_by_another_process_is_one_clear_line_and_the_rerun_sends_once(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        assert run("unsubscribe", "user4@example.org", cwd=root).returncode == 0
        hold = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        hold += "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()"
        database = str(root / ".newsletter" / "newsletter.db")
        with subprocess.Popen(
            [sys.executable, "-c", hold, database], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as holder:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            env = {**os.environ, "NEWSLETTER_DB_BUSY_TIMEOUT": "0.5"}  # the test hook: 30 s otherwise
            for args in (("send", "issue.md", "--yes"), ("unsubscribe", "a@example.org")):
                locked = run(*args, cwd=root, env=env)
                assert locked.returncode == 1 and "Traceback" not in locked.stderr, locked.stderr
                assert [line for line in locked.stderr.splitlines() if line.startswith("error:")] == [
                    "error: the workspace database is locked by another process (waited 0.5 s); try again "
                    "when it is done"
                ]
            holder.communicate("")  # released
        assert server.handler.messages == []
        rerun = run("send", "issue.md", "--yes", cwd=root)
        assert rerun.returncode == 0 and "sent 4, failed 0" in rerun.stdout, rerun.stdout + rerun.stderr
        assert server.handler.copies() == {f"user{i}@example.org": 1 for i in range(4)}
        assert run("unsubscribe", "a@example.org", cwd=root).returncode == 0


def on_a_small_disk(root: Path, slack_pages: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with the workspace's .newsletter/ on a tmpfs of its files plus ``slack_pages`` free pages
    (in a private mount namespace); what it wrote is copied back after, as when space is freed."""
    import shlex
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a small tmpfs needs root and unshare(1)")
    state, kept = root / ".newsletter", root.parent / "kept"
    size = (sum(path.stat().st_size // 4096 + 1 for path in state.iterdir()) + slack_pages) * 4096
    command = shlex.join([sys.executable, "-m", "newsletter_mailer", *args])
    s, k = shlex.quote(str(state)), shlex.quote(str(kept))
    script = (
        f"mkdir -p {k} && cp -a {s}/. {k}/ && mount -t tmpfs -o size={size},mode=0700 tmpfs {s} && "
        f"cp -a {k}/. {s}/ && {{ {command}; rc=$?; cp -a {s}/. {k}/; exit $rc; }}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    shutil.rmtree(state)
    shutil.copytree(kept, state)
    return result


def test_a_full_disk_mid_send_is_one_clear_line_and_the_rerun_sends_each_once(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 300)
        assert run("unsubscribe", "nobody@example.org", cwd=root).returncode == 0
        # 64 pages for the send's reserve, 128 for the list and the first outcomes: full mid-send
        full = on_a_small_disk(root, 192, "send", "issue.md", "--yes")
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
        assert [line for line in full.stderr.splitlines() if line.startswith("error:")] == [
            "error: the disk is full; free some space and run the same command again (nothing was half-written)"
        ]
        before = len(server.handler.messages)
        assert 0 < before < 300, before
        status = run("status", "issue.md", cwd=root).stdout
        assert f"sent {before}, pending {300 - before}, failed 0" in status and "in flight 0" in status
        too_full = on_a_small_disk(root, 8, "send", "issue.md", "--yes")  # not even room to start
        assert too_full.returncode == 1 and "the disk is full" in too_full.stderr, too_full.stderr
        assert len(server.handler.messages) == before
        rerun = run("send", "issue.md", "--yes", cwd=root)
        assert rerun.returncode == 0 and f"sent {300 - before}, failed 0" in rerun.stdout, rerun.stderr
        assert "possibly duplicated" not in rerun.stdout
    assert server.handler.copies() == {f"user{i}@example.org": 1 for i in range(300)}
    assert not (root / ".newsletter" / "reserve").exists()


@pytest.mark.parametrize("command", [["serve"], ["preview", "issues/example.md"]])
def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    import socket

    ws = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "newsletter_mailer", "init", str(ws)], check=True, capture_output=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *command, "--port", str(port)],
            cwd=ws,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port} (Address already in use)" in result.stderr
    assert "Traceback" not in result.stderr and "INFO" not in result.stderr


def test_the_command_keeps_clicks_usage_errors_and_exit_codes(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    unknown, missing, version = run("nope"), run("send"), run("--version")
    assert unknown.returncode == 2 and "Error: No such command 'nope'." in unknown.stderr
    assert missing.returncode == 2 and "Error: Missing argument 'ISSUE'." in missing.stderr
    assert version.returncode == 0 and version.stdout.startswith("newsletter, version ")


def test_a_missing_subscribers_file_is_one_line_and_does_not_suggest_force(tmp_path: Path) -> None:
    from conftest import make_workspace

    root = make_workspace(tmp_path / "ws", 1, 2)
    for extra in ((), ("--dry-run",), ("--force",)):
        result = run("send", "issue.md", "--subscribers", "nope.csv", "--yes", *extra, cwd=root)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        assert result.stderr == "nope.csv: error: subscriber list not found\n", extra
        assert "--force" not in result.stdout + result.stderr


def test_serve_help_names_every_page_it_serves(tmp_path: Path) -> None:
    said = " ".join(run("serve", "--help", cwd=tmp_path).stdout.split())
    for page in ("unsubscribe", "one-click", "/subscribe", "/confirm/TOKEN", "/healthz"):
        assert page in said, page
    assert "sign up" in run("--help", cwd=tmp_path).stdout


def test_the_readmes_editor_line_works_with_editor_unset(tmp_path: Path) -> None:
    from conftest import REPO

    line = next(x for x in (REPO / "README.md").read_text().splitlines() if "EDITOR" in x)
    command = line.split("#")[0].strip()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vi").write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/opened"\n')
    (bin_dir / "vi").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("EDITOR", "VISUAL")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (bin_dir / "opened").read_text().strip() == "issues/2026-12.md"


def test_init_without_a_terminal_says_which_settings_are_placeholders(tmp_path: Path) -> None:
    result = run("init", "ws", "--name", "River News", cwd=tmp_path, input="")
    assert result.returncode == 0, result.stderr
    note = next(line for line in result.stderr.splitlines() if "placeholder" in line)
    assert "from = 'newsletter@example.org'" in note and "base_url = 'http://127.0.0.1:8000'" in note
    assert "name =" not in note  # given on the command line: not a placeholder
    given = run(
        "init", "ws2", "--name", "N", "--from", "n@example.org", "--base-url", "https://x.example", cwd=tmp_path
    )
    assert "placeholder" not in given.stderr


def test_following_inits_postal_address_hint_names_the_organisation_once(tmp_path: Path) -> None:
    assert run("init", "ws", "--name", "River News", cwd=tmp_path, input="").returncode == 0
    ws = tmp_path / "ws"
    toml = (ws / "newsletter.toml").read_text()
    hint = next(line for line in toml.splitlines() if line.startswith("# postal_address"))
    (ws / "newsletter.toml").write_text(toml.replace(hint, hint.lstrip("# ")))  # as its comment says
    assert run("render", "issues/example.md", cwd=ws).returncode == 0
    text = (ws / "build" / "example.txt").read_text()
    footer = text[text.rindex("\n-- \n") :]
    assert footer.count("River News") == 2  # the name line and "you subscribed to River News"
    assert "Your organisation" not in text


def test_subscribers_check_counts_confirmed_signups(tmp_path: Path) -> None:
    from conftest import make_workspace, settings_for
    from newsletter_mailer.audience.signup_log import SignupLog
    from newsletter_mailer.audience.subscribers import Subscriber
    from newsletter_mailer.store.factory import open_store

    root = make_workspace(tmp_path / "ws", 1, 2)
    with open_store(settings_for(root)) as store:
        signups = SignupLog(store)
        for address in ("new@example.org", "user0@example.org", "gone@example.org"):  # user0 is in the CSV
            pending = signups.request(Subscriber(address, "New"), "127.0.0.1", "1")
            assert signups.confirm(pending.ref, "127.0.0.1") == address
    assert run("unsubscribe", "gone@example.org", cwd=root).returncode == 0  # signed up, then left
    result = run("subscribers", "check", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "2 valid addresses: 2 would be mailed" in result.stdout
    assert "1 confirmed signup not in the CSV would be mailed too" in result.stdout


@pytest.mark.parametrize(("configured", "given", "side_by_side"), [(4, "1", False), (1, "3", True)])
def test_concurrency_on_the_command_line_overrides_the_settings(
    tmp_path: Path, configured: int, given: str, side_by_side: bool
) -> None:
    from conftest import make_workspace
    from smtp_servers import Faults, SMTPTestServer

    with SMTPTestServer(Faults(delay=0.05)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 12, smtp_extra=f"concurrency = {configured}")
        result = run("send", "issue.md", "--yes", "--concurrency", given, cwd=root)
    assert result.returncode == 0, result.stderr
    assert len(server.handler.messages) == 12
    assert (server.handler.peak_in_data > 1) is side_by_side, server.handler.peak_in_data


def test_rate_on_the_command_line_overrides_the_settings(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 6, smtp_extra="rate = 0")
        result = run("send", "issue.md", "--yes", "--rate", "5", cwd=root)
    assert result.returncode == 0, result.stderr
    times = server.handler.accepted_at
    assert len(times) == 6 and times[-1] - times[0] >= 5 / 5 * 0.9  # never faster than 5 a second


def test_a_deferred_recipient_fails_once_retry_max_seconds_is_over(tmp_path: Path) -> None:
    """Temporary failures are retried until the send's retry window closes, then the row fails
    with the reason, long before max_attempts."""
    from conftest import make_workspace
    from smtp_servers import Faults, SMTPTestServer

    extra = "retry_delay = 0.05\nmax_attempts = 1000\nretry_max_seconds = 1"
    with SMTPTestServer(Faults(defer=frozenset({"user1@example.org"}))) as server:
        root = make_workspace(tmp_path / "ws", server.port, 3, smtp_extra=extra)
        result = run("send", "issue.md", "--yes", cwd=root)
    assert result.returncode == 1 and "sent 2, failed 1" in result.stdout, result.stdout + result.stderr
    status = run("status", "issue.md", cwd=root).stdout
    failed = next(line for line in status.splitlines() if line.startswith("failed user1@example.org"))
    attempts = int(failed.split(" after ")[1].split()[0])
    assert 2 <= attempts < 1000 and "(gave up after" in failed and "451" in failed, failed


def test_unsubscribe_mailto_goes_in_list_unsubscribe_beside_the_link(tmp_path: Path) -> None:
    from conftest import make_workspace
    from smtp_servers import SMTPTestServer

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 1)
        toml = (root / "newsletter.toml").read_text()
        (root / "newsletter.toml").write_text(
            toml.replace("[newsletter]\n", '[newsletter]\nunsubscribe_mailto = "leave@example.org"\n', 1)
        )
        assert run("send", "issue.md", "--yes", cwd=root).returncode == 0
    message = email.message_from_bytes(server.handler.messages[0].data, policy=policy.default)
    header = " ".join(str(message["List-Unsubscribe"]).split())
    assert header.startswith("<mailto:leave@example.org?subject=unsubscribe>, <https://lists.example.org/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
