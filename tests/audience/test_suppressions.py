"""suppressions.py and its commands: add, export, import, and `newsletter unsubscribe`.
The list's rules are checked on every store (SQLite and a real PostgreSQL server)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.cli import main
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.sqlite import SQLiteStore


def test_add_is_idempotent_and_case_insensitive(store: Store) -> None:
    lst = SuppressionList(store)
    assert lst.add("Ada@example.org", "unsubscribed", "web")
    assert not lst.add("ada@example.org", "bounced", "again")
    assert "ADA@EXAMPLE.ORG" in lst and len(lst) == 1
    assert lst.get("ada@example.org").reason == "unsubscribed"  # type: ignore[union-attr]
    assert "other@example.org" not in lst and lst.get("other@example.org") is None


def test_remove_and_list_in_order(store: Store) -> None:
    lst = SuppressionList(store)
    lst.add("a@example.org", "unsubscribed", "web")
    lst.add("b@example.org", "bounced", "issue-1")
    assert [entry.address for entry in lst] == ["a@example.org", "b@example.org"]
    assert lst.remove("A@EXAMPLE.ORG") and not lst.remove("a@example.org")
    assert [entry.address for entry in lst] == ["b@example.org"] and len(lst) == 1


def test_an_unknown_reason_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="reason must be one of"):
        SuppressionList(store).add("a@example.org", "annoyed")
    assert store.count_suppressions() == 0


def test_export_then_import_round_trips(store: Store, tmp_path: Path) -> None:
    first = SuppressionList(SQLiteStore.open(tmp_path / "a" / "newsletter.db"))
    first.add("a@example.org", "unsubscribed", "web")
    first.add("b@example.org", "bounced", "issue-1")
    buffer = io.StringIO()
    assert first.export_csv(buffer) == 2
    path = tmp_path / "export.csv"
    path.write_text(buffer.getvalue() + "not-an-address,manual,x,y\nc@example.org,weird,x,y\n")
    second = SuppressionList(store)
    added, problems = second.import_csv(path)
    assert added == 3
    assert second.get("b@example.org").reason == "bounced"  # type: ignore[union-attr]
    assert second.get("c@example.org").reason == "manual"  # type: ignore[union-attr]
    assert second.get("c@example.org").note == "weird"  # type: ignore[union-attr]
    assert [p.split(":", 1)[1] for p in problems] == [
        "4: 'not-an-address' is not a valid address: " + problems[0].split("address: ", 1)[1]
    ]


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
    assert "2 valid addresses: 1 would be mailed, 1 is unsubscribed or bounced" in check.stdout
    missing = run("subscribers", "check", "nothere.csv")
    assert missing.returncode == 2 and "nothere.csv: error: subscriber list not found" in missing.stderr


def test_remove_keeps_a_record_that_export_all_shows_and_import_skips(store: Store, tmp_path: Path) -> None:
    lst = SuppressionList(store)
    lst.add("a@example.org", "bounced", "issue-1")
    removed = lst.remove("A@example.org", "relay misconfigured")
    assert removed is not None and removed.reason == "bounced" and "a@example.org" not in lst
    assert lst.remove("a@example.org") is None
    buffer = io.StringIO()
    assert lst.export_csv(buffer) == 0
    assert buffer.getvalue().strip() == "email,reason,source,created,note"
    buffer = io.StringIO()
    assert lst.export_csv(buffer, removed=True) == 1
    header, row = buffer.getvalue().splitlines()
    assert header == "email,reason,source,created,note,removed,removal_note"
    assert row.startswith("a@example.org,bounced,issue-1,") and row.endswith(",relay misconfigured")
    (tmp_path / "all.csv").write_text(buffer.getvalue())
    assert lst.import_csv(tmp_path / "all.csv") == (0, [])  # a removed address stays removed


def test_suppressions_remove_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for address in ("a@example.org", "b@example.org"):
        assert runner.invoke(main, ["unsubscribe", address, "--reason", "bounced"]).exit_code == 0
    typo = runner.invoke(main, ["suppressions", "remove", "a@example.org", "not an address"])
    assert typo.exit_code == 2 and "'not an address' is not a valid address" in typo.output
    assert "nothing was removed" in typo.output and "Traceback" not in typo.output
    done = runner.invoke(main, ["suppressions", "remove", "a@example.org", "c@example.org", "--reason", "5.7.1"])
    assert done.exit_code == 0, done.output
    assert "removed a@example.org (was bounced since 20" in done.output
    assert "c@example.org was not on the suppression list" in done.output
    exported = runner.invoke(main, ["suppressions", "export", "--all"]).output
    assert "b@example.org,bounced,cli," in exported
    assert any(
        line.startswith("a@example.org,bounced,cli,") and line.endswith(",5.7.1") for line in exported.splitlines()
    )
    assert "a@example.org" not in runner.invoke(main, ["suppressions", "export"]).output


def test_exports_carry_a_byte_order_mark_unless_no_bom_and_imports_take_both(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    runner = CliRunner()
    (workspace / "subscribers.csv").write_text("email,name\nzoe@example.org,Zoë\nada@example.org,Ada\n")
    assert runner.invoke(main, ["unsubscribe", "zoë@example.org"]).exit_code == 0
    for command in (["suppressions", "export", "s.csv"], ["subscribers", "export", "-o", "l.csv"]):
        assert runner.invoke(main, command).exit_code == 0
    for name, expected in (("s.csv", "zoë@example.org,unsubscribed"), ("l.csv", "zoe@example.org,Zoë")):
        data = (workspace / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbfemail,") and expected in data.decode("utf-8-sig")
    piped = runner.invoke(main, ["suppressions", "export"])  # stdout that is no terminal: a file
    assert piped.stdout.startswith("\ufeffemail,")
    for command in (
        ["suppressions", "export", "s2.csv", "--no-bom"],
        ["subscribers", "export", "-o", "l2.csv", "--no-bom"],
    ):
        assert runner.invoke(main, command).exit_code == 0
    assert (workspace / "s2.csv").read_bytes().startswith(b"email,")
    assert (workspace / "l2.csv").read_bytes().startswith(b"email,")
    assert runner.invoke(main, ["suppressions", "export", "--no-bom"]).stdout.startswith("email,")
    fresh = workspace.parent / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    for name in ("s.csv", "s2.csv"):
        imported = runner.invoke(main, ["suppressions", "import", str(workspace / name)])
        assert imported.exit_code == 0 and "unknown" not in imported.output, imported.output
    assert "zoë@example.org,unsubscribed" in runner.invoke(main, ["suppressions", "export"]).stdout
    for name in ("l.csv", "l2.csv"):
        checked = runner.invoke(main, ["subscribers", "check", str(workspace / name)])
        assert checked.exit_code == 0 and "2 valid addresses" in checked.output, checked.output


def test_one_reason_vocabulary_with_a_free_text_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "a@example.org suppressed (manual: asked by phone)" in ok(
        "unsubscribe", "a@example.org", "--reason", "asked by phone"
    )
    assert "b@example.org suppressed (bounced: relay said 5.1.1)" in ok(
        "unsubscribe", "b@example.org", "--reason", "Bounced", "--note", "relay said 5.1.1"
    )
    ok("unsubscribe", "c@example.org", "--note", '=HYPERLINK("https://evil.example")')
    (tmp_path / "in.csv").write_text(
        "email,reason,note\n"
        "d@example.org,,\n"  # an empty reason: manual, and nothing to warn about
        "e@example.org,asked at the AGM,\n"
        "f@example.org,moved away,per Sam\n"
        "g@example.org,complained,\n",
        encoding="utf-8",
    )
    imported = ok("suppressions", "import", "in.csv")
    assert "imported 4 new suppressed addresses" in imported and "unknown reason" not in imported
    ok("suppressions", "remove", "a@example.org", "--note", "called back")
    exported = list(csv.reader(io.StringIO(ok("suppressions", "export", "--all", "--no-bom"))))
    assert exported[0] == ["email", "reason", "source", "created", "note", "removed", "removal_note"]
    rows = {row[0]: row for row in exported[1:]}
    assert {address: (row[1], row[4]) for address, row in rows.items()} == {
        "b@example.org": ("bounced", "relay said 5.1.1"),
        "c@example.org": ("unsubscribed", '\'=HYPERLINK("https://evil.example")'),
        "d@example.org": ("manual", ""),
        "e@example.org": ("manual", "asked at the AGM"),
        "f@example.org": ("manual", "moved away; per Sam"),
        "g@example.org": ("complained", ""),
        "a@example.org": ("manual", "asked by phone"),  # the removed entry keeps its note
    }
    assert rows["a@example.org"][6] == "called back" and len(rows["c@example.org"]) == 5
    ok("suppressions", "export", "all.csv")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert "imported 6 new" in ok("suppressions", "import", str(tmp_path / "all.csv"))
    again = SuppressionList(SQLiteStore.open(fresh / ".newsletter" / "newsletter.db"))
    assert again.get("c@example.org").note == '=HYPERLINK("https://evil.example")'  # type: ignore[union-attr]
    assert again.get("f@example.org").note == "moved away; per Sam"  # type: ignore[union-attr]


def test_a_store_from_before_notes_gets_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlite3

    from newsletter_mailer.store.schema import STEPS

    (tmp_path / ".newsletter").mkdir(mode=0o700)
    old = sqlite3.connect(tmp_path / ".newsletter" / "newsletter.db")
    for step in STEPS[:6]:  # the schema as version 6 left it (tests/store/test_schema.py: real files)
        step.sqlite(old) if callable(step.sqlite) else old.executescript(step.sqlite)
    old.execute("PRAGMA user_version = 6")
    old.execute("INSERT INTO suppressions VALUES ('old@example.org', 'bounced', 'issue-1', 0)")
    old.commit()
    old.close()
    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "suppressions", "export", "--no-bom"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "old@example.org,bounced,issue-1,1970-01-01T00:00:00Z,"
