"""suppressions.py and its commands: add, export, import, and `newsletter unsubscribe`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.store.database import connect


def test_add_is_idempotent_and_case_insensitive(tmp_path: Path) -> None:
    lst = SuppressionList(connect(tmp_path / "db.sqlite"))
    assert lst.add("Ada@example.org", "unsubscribed", "web")
    assert not lst.add("ada@example.org", "bounced", "again")
    assert "ADA@EXAMPLE.ORG" in lst and len(lst) == 1
    assert lst.get("ada@example.org").reason == "unsubscribed"  # type: ignore[union-attr]


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    first = SuppressionList(connect(tmp_path / "a.sqlite"))
    first.add("a@example.org", "unsubscribed", "web")
    first.add("b@example.org", "bounced", "issue-1")
    buffer = io.StringIO()
    assert first.export_csv(buffer) == 2
    path = tmp_path / "export.csv"
    path.write_text(buffer.getvalue() + "not-an-address,manual,x,y\nc@example.org,weird,x,y\n")
    second = SuppressionList(connect(tmp_path / "b.sqlite"))
    added, problems = second.import_csv(path)
    assert added == 3
    assert second.get("b@example.org").reason == "bounced"  # type: ignore[union-attr]
    assert second.get("c@example.org").reason == "manual"  # type: ignore[union-attr]
    assert any(":4:" in p and "not a valid address" in p for p in problems)
    assert any(":5:" in p and "unknown reason 'weird'" in p for p in problems)


def test_unsubscribe_and_subscribers_check_commands(tmp_path: Path) -> None:
    (tmp_path / "subscribers.csv").write_text("email,name\na@example.org,A\nb@example.org,B\nbad,C\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    result = run("unsubscribe", "A@example.org")
    assert result.returncode == 0 and "A@example.org suppressed (unsubscribed)" in result.stdout
    assert "already suppressed" in run("unsubscribe", "a@example.org").stdout
    bad = run("unsubscribe", "nope")
    assert bad.returncode == 2 and "not a valid address" in bad.stderr
    check = run("subscribers", "check")
    assert check.returncode == 1
    assert "subscribers.csv:4: 'bad' is not a valid address" in check.stdout
    assert "2 valid addresses: 1 would be mailed, 1 are unsubscribed or bounced" in check.stdout
    missing = run("subscribers", "check", "nothere.csv")
    assert missing.returncode == 2 and "nothere.csv: error: subscriber list not found" in missing.stderr
