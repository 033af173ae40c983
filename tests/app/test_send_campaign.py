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
from email import message_from_bytes, policy
from email.message import EmailMessage
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


BRANCHES = ("North", "South", "East", "West")
SEGMENTED_ISSUE = (
    "---\nsubject: Hello {{ subscriber.name }}\nhighlights: auto\n---\nDear {{ subscriber.name }},\n\n"
    '## North branch\n{only: branch == "North"}\n\nNorthmeet on Tuesday.\n\n'
    "## Everyone\n\nEveryonetext.\n"
)


def _segmented_workspace(root: Path, port: int) -> Path:
    """200 readers in four branches, and an issue with a section for the North branch."""
    make_workspace(root, port, 0)
    rows = "\n".join(f"user{i}@example.org,User {i},{BRANCHES[i % 4]}" for i in range(200))
    (root / "subscribers.csv").write_text(f"email,name,branch\n{rows}\n")
    (root / "issue.md").write_text(SEGMENTED_ISSUE)
    return root


def test_a_section_for_north_reaches_exactly_the_north_readers(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = _segmented_workspace(tmp_path / "ws", server.port)
        checked = _newsletter(root, "check", "issue.md")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "150 reader(s) get the issue without any conditional part" in checked.stdout
        assert "50 reader(s) get the issue with section 'North branch'" in checked.stdout
        assert "2 variant(s); the largest is" in checked.stdout
        dry = _newsletter(root, "send", "issue.md", "--dry-run")
        assert "50 readers get the issue with section 'North branch'" in dry.stdout, dry.stdout + dry.stderr
        sent = _newsletter(root, "send", "issue.md", "--yes")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "150 readers get the issue without any conditional part" in sent.stdout
        messages = list(server.handler.messages)
    assert len(messages) == 200
    for received in messages:
        (address,) = received.rcpt_tos
        number = int(address.removeprefix("user").partition("@")[0])
        message = message_from_bytes(received.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        text = "".join(str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text")
        north = BRANCHES[number % 4] == "North"
        assert ("Northmeet" in text) is north, address
        assert ("North branch" in text) is north, address  # its heading and its highlight
        assert "Everyonetext" in text and f"Dear User {number}," in text


def test_the_variant_counts_of_a_pre_flight_are_of_the_readers_it_sends_to(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = _segmented_workspace(tmp_path / "ws", server.port)
        for address in ("user0@example.org", "user1@example.org"):  # a North and an East reader leave
            gone = _newsletter(root, "unsubscribe", address)
            assert gone.returncode == 0, gone.stdout + gone.stderr
        first = _newsletter(root, "send", "issue.md", "--yes")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "49 readers get the issue with section 'North branch'" in first.stdout, first.stdout
        assert "149 readers get the issue without any conditional part" in first.stdout
        again = _newsletter(root, "send", "issue.md", "--yes")  # everyone sent: no variant has readers
        assert "readers get the issue with" not in again.stdout and len(server.handler.messages) == 198


def test_a_condition_on_a_column_the_list_lacks_is_a_check_error(tmp_path: Path) -> None:
    root = _segmented_workspace(tmp_path / "ws", 1)
    (root / "issue.md").write_text(SEGMENTED_ISSUE.replace('branch == "North"', 'brnach == "North"'))
    checked = _newsletter(root, "check", "issue.md")
    assert checked.returncode == 1
    assert "issue.md:8: error: only: brnach == \"North\": 'brnach' is no column of " in checked.stdout
    assert "subscribers.csv; its columns: email, name, branch" in checked.stdout
    refused = _newsletter(root, "send", "issue.md", "--yes")
    assert refused.returncode != 0 and "issue.md:8" in refused.stdout + refused.stderr


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


def test_where_sends_to_one_branch_and_a_later_full_send_reaches_only_the_others(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = _segmented_workspace(tmp_path / "ws", server.port)
        north = _newsletter(root, "send", "issue.md", "--yes", "--where", 'branch == "North"')
        assert north.returncode == 0, north.stdout + north.stderr
        assert 'left for another run (not matched by --where branch == "North")' in north.stdout
        first = [m.rcpt_tos[0] for m in server.handler.messages]
        shown = _newsletter(root, "status", "issue")
        everyone = _newsletter(root, "send", "issue.md", "--yes")
        assert everyone.returncode == 0, everyone.stdout + everyone.stderr
        second = [m.rcpt_tos[0] for m in server.handler.messages][len(first) :]
        again = _newsletter(root, "send", "issue.md", "--yes", "--where", 'branch != "North"')
        final = _newsletter(root, "status", "issue")
    numbers = [int(a.removeprefix("user").partition("@")[0]) for a in first]
    assert len(first) == 50 and all(BRANCHES[n % 4] == "North" for n in numbers)
    assert "sent 50, pending 0" in shown.stdout and "left out by --where so far (not sent): 150" in shown.stdout
    assert "no longer in the list 0" in shown.stdout  # the others are not removed
    assert len(second) == 150 and not set(first) & set(second)
    assert "nothing to send" in again.stdout  # everyone has it: no reader is sent it twice
    runs = [line for line in final.stdout.splitlines() if line.startswith("run ")]
    assert [r.partition(": ")[2] for r in runs] == ['--where branch == "North"', "the whole list"]


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("branch ==", "--where: expected a column name"),
        ('brnach == "North"', "--where: 'brnach' is no column of"),
        ("branch.lower()", "--where: cannot read '.lower()"),
    ],
)
def test_a_bad_where_is_one_line_and_exit_2_before_anything_is_loaded(tmp_path: Path, where: str, said: str) -> None:
    root = _segmented_workspace(tmp_path / "ws", 1)
    refused = _newsletter(root, "send", "issue.md", "--yes", "--where", where)
    assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr
    assert "nothing sent yet" in _newsletter(root, "status", "issue").stdout
