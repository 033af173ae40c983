"""app/status.py through the real command: every issue at a glance, newest first; one issue by
its stem without the file; worker ids only when asked for."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_workspace
from smtp_servers import Faults, SMTPTestServer


def newsletter(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_status_without_an_issue_lists_every_issue_newest_first_with_its_counts(tmp_path: Path) -> None:
    with SMTPTestServer(Faults(reject=frozenset({"user1@example.org"}))) as server:
        root = make_workspace(tmp_path / "ws", server.port, 4)
        assert newsletter(root, "send", "issue.md", "--yes").returncode == 1  # one failed
        time.sleep(1.1)  # the overview orders by when each issue's list was loaded
        (root / "2027-01.md").write_text((root / "issue.md").read_text())
        assert newsletter(root, "unsubscribe", "user2@example.org").returncode == 0
        assert newsletter(root, "send", "2027-01.md", "--yes").returncode == 0  # user1 bounced, user2 left
    result = newsletter(root, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["2027-01", "issue"]
    today = time.strftime("%Y-%m-%d")
    assert lines[0] == (
        f"2027-01  {today}  sent 2, failed 0, possibly duplicated 0, bounced 0, complained 0, unsubscribed since 0"
    )
    assert lines[1] == (
        f"issue  {today}  sent 3, failed 1, possibly duplicated 0, bounced 0, complained 0, unsubscribed since 1"
    )


@pytest.mark.parametrize("argument", ["2027-01", "2027-01.md", "issues/2027-01.md"])
def test_status_of_one_issue_needs_no_issue_file(tmp_path: Path, argument: str) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 2)
        (root / "2027-01.md").write_text((root / "issue.md").read_text())
        assert newsletter(root, "send", "2027-01.md", "--yes").returncode == 0
    (root / "2027-01.md").unlink()
    result = newsletter(root, "status", argument)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2027-01: sent 2, pending 0, failed 0")


def test_worker_ids_are_shown_only_with_workers(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        assert newsletter(root, "send", "issue.md", "--yes").returncode == 0
    plain = newsletter(root, "status", "issue").stdout
    assert "worker" not in plain and "pid" not in plain
    detailed = newsletter(root, "status", "issue", "--workers").stdout
    assert re.search(r"^worker \S+ on \S+ \(pid \d+\): sent 3, [\d.]+ msg/s", detailed, re.M), detailed
    refused = newsletter(root, "status", "--workers")
    assert refused.returncode == 2 and "--workers goes with ISSUE" in refused.stderr
