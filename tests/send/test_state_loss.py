"""A database deleted or replaced while a send runs, or missing after sends: the run stops and
says so, its record is saved, and nothing starts again from zero by accident."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import journal_counts, make_workspace, run_send, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.errors import StateLost
from newsletter_mailer.send import engine
from newsletter_mailer.send.engine import NoProgress
from newsletter_mailer.send.transport import Result
from smtp_servers import Faults, SMTPTestServer


class Meddler(NoProgress):
    """Does something to the database file when the fifth recipient is done."""

    def __init__(self, path: Path, replace: bool) -> None:
        self.path, self.replace, self.done = path, replace, 0

    def finished_one(self, address: str, result: Result | None) -> None:
        self.done += 1
        if self.done != 5:
            return
        if self.replace:
            other = self.path.with_name("other.db")
            sqlite3.connect(other).close()
            os.replace(other, self.path)
        else:
            self.path.unlink()


@pytest.mark.parametrize("replace", [False, True])
def test_a_database_deleted_or_replaced_mid_send_stops_the_run_and_keeps_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replace: bool
) -> None:
    monkeypatch.setattr(engine, "DATABASE_CHECK_SECONDS", 0.0)
    # Outcomes wait a while before they are written: the fifth is still unwritten when the file
    # goes, and must be in the record saved (it was lost once, CI run of stop 28).
    monkeypatch.setattr(engine, "GATHER_SECONDS", 0.2)
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 40, smtp_extra="concurrency = 2")
        settings = settings_for(root)
        with (
            pytest.raises(StateLost, match="replaced" if replace else "deleted") as stopped,
            open_campaign(root / "issue.md", settings) as campaign,
        ):
            campaign.run(Meddler(settings.database_path, replace))
        sent = len(server.handler.messages)
        assert 5 <= sent < 40
        saved = [p for p in settings.state_dir.iterdir() if p.name.startswith("newsletter.db.saved-")]
        if replace:
            assert len(saved) == 1 and str(saved[0]) in str(stopped.value)
            os.replace(saved[0], settings.database_path)
        else:
            assert saved == [] and "back where it was" in str(stopped.value)
        assert journal_counts(root)["sent"] == sent
        _, summary = run_send(root)
    assert summary.sent == 40 - sent
    assert set(server.handler.copies().values()) == {1}


def test_a_missing_database_after_sends_is_an_error_unless_a_new_one_is_asked_for(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *args], cwd=root, capture_output=True, text=True, timeout=60
        )

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        run_send(root)
        settings_for(root).database_path.unlink()
        for args in (("send", "issue.md", "--yes"), ("unsubscribe", "a@example.org"), ("status", "issue.md")):
            refused = run(*args)
            assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
            assert "newsletter.db is missing, but this workspace has sent issue" in refused.stderr
        assert len(server.handler.messages) == 3
        again = run("send", "issue.md", "--yes", "--new-database")
        assert again.returncode == 0, again.stderr
    assert len(server.handler.messages) == 6


def test_with_several_workers_the_database_is_saved_once_after_every_worker_has_ended(tmp_path: Path) -> None:
    """Two sender processes on one SQLite file that is deleted mid-send: each stops, and the first
    writes the record out once the other has written its outcomes (a worker that saved on its own
    would find its first save in the way and call the database replaced)."""
    with SMTPTestServer(Faults(delay=0.2)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 300)
        settings = settings_for(root)
        send = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes", "--workers", "2"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(server.handler.messages) < 20:
            assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
            time.sleep(0.02)
        settings.database_path.unlink()
        output = send.communicate(timeout=120)[0]
        sent = len(server.handler.messages)
        assert send.returncode == 1 and "Traceback" not in output, output
        assert "was deleted while this send ran" in output and "back where it was" in output, output
        assert "replaced" not in output and sent < 300, output
        assert [p.name for p in settings.state_dir.iterdir() if ".saved-" in p.name] == []
        assert journal_counts(root)["sent"] == sent  # every worker's outcomes are in the saved record
        _, summary = run_send(root)
    assert summary.sent == 300 - sent
    assert set(server.handler.copies().values()) == {1}


def test_ctrl_c_after_the_database_is_deleted_still_saves_it_and_says_so(tmp_path: Path) -> None:
    """Ctrl+C just after the file goes (the relay holding each connection's next message, so the
    interrupt lands mid-send): the interrupt must not hide that the record was saved, or where."""
    with SMTPTestServer(Faults(hold_after=10)) as server:
        root = make_workspace(tmp_path / "ws", server.port, 40)
        settings = settings_for(root)
        send = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while server.handler.held() < 4:  # ten accepted, each of the four connections waiting on one more
            assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
            time.sleep(0.01)
        settings.database_path.unlink()
        send.send_signal(signal.SIGINT)
        output = send.communicate(timeout=120)[0]
        server.handler.release()
        assert send.returncode == 1 and "Traceback" not in output, output
        assert "was deleted while this send ran" in output and "back where it was" in output, output
        assert journal_counts(root)["sent"] == 10  # the saved record has every outcome written
        _, summary = run_send(root)
    copies = server.handler.copies()
    assert set(copies) == {f"user{i}@example.org" for i in range(40)}
    duplicated = [address for address, n in copies.items() if n > 1]
    assert len(duplicated) <= summary.possibly_duplicated <= 4  # the four in flight at the interrupt, flagged
