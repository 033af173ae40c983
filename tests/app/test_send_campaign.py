"""app/send_campaign.py through the real command: the confirmation declined with "n" or Ctrl+C
sends nothing, says so, exits 1 or 130, and leaves no pending rows behind."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_workspace
from smtp_servers import SMTPTestServer


def _until_prompt(stdout: int, process: subprocess.Popen[bytes]) -> str:
    """What the command wrote up to its question (which ends without a newline)."""
    seen, deadline = b"", time.monotonic() + 120
    while b"[y/N]: " not in seen:
        assert time.monotonic() < deadline and process.poll() is None, seen.decode()
        if select.select([stdout], [], [], 0.5)[0]:
            seen += os.read(stdout, 4096)
    return seen.decode()


def _newsletter(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("answer", ["n", "ctrl-c"])
def test_declining_at_the_prompt_sends_nothing_and_leaves_nothing_pending(tmp_path: Path, answer: str) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 6)
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md"],
            cwd=root,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            shown = _until_prompt(process.stdout.fileno(), process)
            assert "to 6 recipients" in shown
            if answer == "n":
                os.write(controller, b"n\n")
            else:
                process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=120)
        finally:
            os.close(controller)
            os.close(terminal)
        assert server.handler.messages == []
    said = errors.decode()
    assert process.returncode == (1 if answer == "n" else 130), said
    assert "nothing sent" in said and "Aborted" not in said and "Traceback" not in said
    assert _newsletter(root, "status", "issue").stdout == "issue: nothing sent yet\n"
    assert _newsletter(root, "status").stdout == "nothing sent yet\n"


def test_declining_a_resumed_send_keeps_what_was_sent(tmp_path: Path) -> None:
    """A no at the prompt of a send already under way changes nothing of what it recorded."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        assert _newsletter(root, "send", "issue.md", "--yes").returncode == 0
        (root / "subscribers.csv").write_text((root / "subscribers.csv").read_text() + "late@example.org,Late\n")
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md"],
            cwd=root,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            assert "to 1 recipient" in _until_prompt(process.stdout.fileno(), process)
            os.write(controller, b"n\n")
            process.communicate(timeout=120)
        finally:
            os.close(controller)
            os.close(terminal)
    assert process.returncode == 1
    assert "sent 3, pending 1" in _newsletter(root, "status", "issue").stdout


class QuietUI:
    """A SendUI that says yes and shows nothing."""

    def findings(self, findings: object, forced: bool) -> None:
        pass

    def preflight(self, preflight: object) -> None:
        pass

    def confirm(self, confirmation: object) -> None:
        pass

    def started(self, total: int) -> None:
        pass

    def finished_one(self, address: str, result: object) -> None:
        pass

    def retrying(self, address: str, result: object, delay: float) -> None:
        pass

    def overall(self, done: int) -> None:
        pass

    def stop(self) -> None:
        pass


_opened: list[str] = []
_counting = False


def _count_opens(event: str, args: tuple[object, ...]) -> None:
    if _counting and event == "open" and isinstance(args[0], str | Path):
        _opened.append(str(args[0]))


sys.addaudithook(_count_opens)


def test_a_send_reads_the_list_once_and_the_issue_once(tmp_path: Path) -> None:
    """The check, the pre-flight and the run share one rendering and one pass over the CSV
    (each open of a file is seen through the interpreter's audit hook)."""
    global _counting
    from conftest import settings_for
    from newsletter_mailer.app.send_campaign import CampaignOutcome, SendRequest, send_issue

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        _opened.clear()
        _counting = True
        try:
            result = send_issue(SendRequest(root / "issue.md"), settings_for(root), QuietUI())
        finally:
            _counting = False
    assert isinstance(result, CampaignOutcome) and result.summary is not None and result.summary.sent == 5
    assert len(server.handler.messages) == 5
    assert [p for p in _opened if p.endswith("subscribers.csv")] == [str(root / "subscribers.csv")]
    assert [p for p in _opened if p.endswith("issue.md")] == [str(root / "issue.md")]
