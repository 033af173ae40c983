"""publish/archive.py: the journal decides what is published (a sent row, not a pending or a
failed one), the issues folder supplies the file, newest first; a sent issue whose file is
now broken stops `publish` at its line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_issue
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.errors import IssueError
from newsletter_mailer.publish.archive import find_sent
from newsletter_mailer.publish.site import publish_site, sent_archive
from newsletter_mailer.store.factory import open_store


def record(settings: Settings, issue: str, outcome: str) -> None:
    """One recipient's row for ``issue``, left pending, failed or sent, as a send leaves it."""
    with open_store(settings) as journal:
        journal.add_recipients(issue, [Subscriber(email=f"{issue}@example.org", name="R")])
        if outcome == "pending":
            return
        (delivery,) = journal.claim_batch(issue, "w1", 1, lease=60).deliveries
        if outcome == "sent":
            journal.mark_sent(delivery, f"<{issue}@example.org>", "250 ok")
        else:
            journal.mark_failed(delivery, "550 no")


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    (tmp_path / "issues").mkdir()
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nname = "N"\n')
    return load_settings(workspace=tmp_path, env={"NEWSLETTER_SECRET": "s"})


def test_only_issues_with_a_sent_row_are_published_newest_first(workspace: Settings) -> None:
    folder = workspace.workspace / "issues"
    for name in ("first", "second", "draft", "bounced"):
        write_issue(folder, f"subject: {name}", "x\n", name=f"{name}.md")
    assert sent_archive(workspace).issues == ()  # no store yet: nothing sent, and none is made
    assert not workspace.database_path.exists()
    record(workspace, "first", "sent")
    time.sleep(0.01)
    record(workspace, "second", "sent")
    record(workspace, "draft", "pending")
    record(workspace, "bounced", "failed")
    record(workspace, "elsewhere", "sent")
    archive = sent_archive(workspace)
    assert [s.key for s in archive.issues] == ["second", "first"]
    assert archive.missing == ("elsewhere",)
    assert archive.issues[0].sent_at > archive.issues[1].sent_at
    assert find_sent(folder / "nowhere", {"a": 1.0}).missing == ("a",)


def test_a_sent_issue_that_no_longer_parses_stops_publish_at_its_line(workspace: Settings) -> None:
    issue = write_issue(workspace.workspace / "issues", "subject: Fine", "x\n", name="fine.md")
    record(workspace, "fine", "sent")
    assert publish_site(workspace).issues == ("fine",)
    issue.write_text("---\nsubject: [unclosed\n---\nx\n")
    with pytest.raises(IssueError) as caught:
        publish_site(workspace)
    assert caught.value.line == 2
    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "publish"],
        cwd=workspace.workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"{issue}:2: error:") and len(result.stderr.strip().splitlines()) == 1
    assert (workspace.workspace / "site" / "issues" / "fine" / "index.html").is_file()  # the last good site stays
