"""pool.py: several sender processes on one send. Two workers share the list without sending
anyone twice; a worker killed with SIGKILL leaves only its claims to be resent (and flagged); a
second machine joins a running send with the same file; the rate holds for the whole send."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import make_workspace, use_store
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.config import load_settings
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.factory import open_store
from smtp_servers import Faults, SMTPTestServer

CONCURRENCY = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """'' for the workspace's SQLite file, else a migrated PostgreSQL database."""
    return "" if request.param == "sqlite" else str(request.getfixturevalue("migrated_pg_url"))


def workspace(tmp_path: Path, port: int, count: int, url: str, smtp_extra: str = "") -> Path:
    root = make_workspace(tmp_path / "ws", port, count, smtp_extra=f"concurrency = {CONCURRENCY}\n{smtp_extra}")
    if url:
        use_store(root, url)
    return root


def newsletter(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**(env or os.environ), "COLUMNS": "200"},
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    return process.communicate(timeout=timeout)[0]


@pytest.fixture
def opened() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def store_of(root: Path, opened: ExitStack) -> Store:
    """The workspace's store, as another process sees it, open until the test ends."""
    return opened.enter_context(open_store(load_settings(workspace=root)))


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def flagged(store: Store) -> set[str]:
    return {row.address for row in store.journal_rows() if row.resent}


def test_two_workers_share_the_list_and_send_each_once(store_url: str, tmp_path: Path, opened: ExitStack) -> None:
    # The relay holds every message after the first until both workers hold one (a worker has only
    # CONCURRENCY connections): each takes a share however slowly the second one starts.
    with SMTPTestServer(Faults(delay=0.005, rcpt_451=0.05, hold_after=1)) as server:
        root = workspace(tmp_path, server.port, 200, store_url)
        sending = newsletter(root, "send", "issue.md", "--yes", "--workers", "2")
        wait_for(lambda: server.handler.held() > CONCURRENCY, "both workers to hand over a message")
        server.handler.release()
        output = finish(sending)
        assert "sent 200, failed 0" in output, output
    assert set(server.handler.copies().values()) == {1} and len(server.handler.copies()) == 200
    store = store_of(root, opened)
    workers = store.workers("issue")
    assert len(workers) == 2 and len({w.pid for w in workers}) == 2
    assert all(w.sent > 0 for w in workers) and sum(w.sent for w in workers) == 200  # both took a share
    assert store.counts("issue")["resent"] == 0
    status = finish(newsletter(root, "status", "issue.md", "--workers"))
    assert status.count("worker ") == 2 and "msg/s" in status


@pytest.mark.parametrize("victim", ["child", "parent"])
def test_a_worker_killed_with_sigkill_leaves_only_its_claims(
    store_url: str, victim: str, tmp_path: Path, opened: ExitStack
) -> None:
    """Kill one of two workers at a random moment: the survivor takes its rows over, a rerun
    finishes; every recipient gets one copy except the flagged ones, at most the killed worker's claims
    (its messages in flight, its outcomes not yet written and the rows it had claimed ahead)."""
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    recipients = 240
    with SMTPTestServer(Faults(delay=0.01)) as server:
        root = workspace(tmp_path, server.port, recipients, store_url)
        send = newsletter(root, "send", "issue.md", "--yes", "--workers", "2")
        store = store_of(root, opened)
        wait_for(lambda: len(store.workers("issue")) == 2, "two workers")
        target = rng.randint(20, 120)
        wait_for(lambda: len(server.handler.messages) >= target, f"{target} messages (seed {seed})")
        time.sleep(rng.uniform(0, 0.05))
        pids = [w.pid for w in store.workers("issue")]
        killed = send.pid if victim == "parent" else next(pid for pid in pids if pid != send.pid)
        survivor = next(pid for pid in pids if pid != killed)
        os.kill(killed, signal.SIGKILL)
        first = finish(send)
        if victim == "parent":
            assert send.returncode == -signal.SIGKILL
            wait_for(lambda: not _alive(survivor), "the orphaned worker to finish the send", timeout=120)
        else:
            assert send.returncode == 0, first
            assert "was killed by signal 9" in first, first
        rerun = finish(newsletter(root, "send", "issue.md", "--yes"))
    copies = server.handler.copies()
    assert set(copies) == {f"user{i}@example.org" for i in range(recipients)}, f"someone was skipped (seed {seed})"
    duplicated = {address for address, n in copies.items() if n > 1}
    resent = flagged(store)
    assert duplicated <= resent, f"a duplicate was not flagged (seed {seed})\n{first}\n{rerun}"
    # docs/architecture-store.md, "Crash bounds": fewer than 3C duplicates and 5C flagged on SQLite,
    # 8C and 15C on PostgreSQL (claims and commits overlap, seven batches each way)
    most_duplicated, most_flagged = (3, 5) if not store_url else (8, 15)
    assert len(resent) < most_flagged * CONCURRENCY, f"more flagged than the killed worker had claimed (seed {seed})"
    assert len(duplicated) < most_duplicated * CONCURRENCY, f"more duplicates than it had unrecorded (seed {seed})"
    assert max(copies.values()) <= 2
    counts = store.counts("issue")
    assert counts["sent"] == recipients and counts["sending"] == counts["pending"] == 0, (first, rerun)
    print(f"seed={seed} victim={victim} duplicated={len(duplicated)} flagged={len(resent)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rpartition(")")[2].split()[:1] == ["Z"])


def test_a_second_machine_joins_a_running_send(store_url: str, tmp_path: Path, opened: ExitStack) -> None:
    # The relay takes 10, then holds each message until the joiner holds one too: the first send
    # cannot end before the second machine has joined, however slowly it starts.
    with SMTPTestServer(Faults(delay=0.01, hold_after=10)) as server:
        root = workspace(tmp_path, server.port, 150, store_url)
        alone = finish(newsletter(root, "send", "issue.md", "--join", "--yes"))
        assert "no send of issue is running to join" in alone and "Traceback" not in alone
        first = newsletter(root, "send", "issue.md", "--yes")
        store = store_of(root, opened)
        wait_for(lambda: server.handler.held() == CONCURRENCY, "the first send to hold its connections")
        again = finish(newsletter(root, "send", "issue.md", "--yes"))
        assert "another `newsletter send` of issue is running" in again and "--join" in again
        joined = newsletter(root, "send", "issue.md", "--join", "--yes")
        wait_for(lambda: server.handler.held() > CONCURRENCY, "the joiner to hand over a message")
        server.handler.release()
        out_first, out_joined = finish(first), finish(joined)
    assert "sent " in out_joined and "Traceback" not in out_joined, out_joined
    copies = server.handler.copies()
    assert len(copies) == 150 and set(copies.values()) == {1}
    assert len(store.workers("issue")) == 2
    assert all(w.sent > 0 for w in store.workers("issue")), (out_first, out_joined)


@pytest.mark.parametrize("change", ["issue", "translation", "from", "secret"])
def test_joining_with_a_different_file_settings_or_secret_is_refused(tmp_path: Path, change: str) -> None:
    """A joiner must send what the send sends: the same issue and translations, the same From and
    Reply-To, and links signed with the same secret (else every unsubscribe link it sends would be
    refused)."""
    with SMTPTestServer(Faults(delay=0.05, hold_after=3)) as server:  # the first send runs until released
        root = workspace(tmp_path, server.port, 60, "")
        french = root / "issue.fr.md"
        french.write_text((root / "issue.md").read_text().replace("Hello", "Bonjour"))
        first = newsletter(root, "send", "issue.md", "--yes")
        wait_for(lambda: server.handler.held() > 0, "the first send to start")
        env = dict(os.environ)
        if change == "issue":
            (root / "issue.md").write_text((root / "issue.md").read_text() + "\nA late edit.\n")
        elif change == "translation":
            french.write_text(french.read_text() + "\nUne correction tardive.\n")
        elif change == "from":
            text = (root / "newsletter.toml").read_text()
            (root / "newsletter.toml").write_text(text.replace("news@example.org", "phish@evil.example"))
        else:
            env["NEWSLETTER_SECRET"] = "another secret entirely, 32 bytes long at least"
        joined = newsletter(root, "send", "issue.md", "--join", "--yes", env=env)
        out = finish(joined)
        server.handler.release()
        first.kill()
        finish(first)
    assert joined.returncode == 2, out
    assert "issue.md: error: not what the running send of issue is sending" in out, out
    assert "Traceback" not in out
    assert not any(m.mail_from.startswith("phish") for m in server.handler.messages)


def test_the_rate_holds_for_the_whole_send_across_workers(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = workspace(tmp_path, server.port, 30, "", smtp_extra="rate = 20")
        started = time.monotonic()
        output = finish(newsletter(root, "send", "issue.md", "--yes", "--workers", "2"))
        elapsed = time.monotonic() - started
    assert "sent 30, failed 0" in output, output
    assert elapsed >= 29 / 20 * 0.9  # 20 a second between both workers, not 20 each


def test_a_remote_workers_rows_are_taken_over_when_its_lease_runs_out(tmp_path: Path, opened: ExitStack) -> None:
    """A worker on another machine claimed two rows and went silent: they are not touched while its
    lease runs, then taken over, sent and counted as possibly duplicated."""
    with SMTPTestServer() as server:
        root = workspace(tmp_path, server.port, 20, "")
        store = store_of(root, opened)
        store.add_recipients("issue", [Subscriber(f"user{i}@example.org", f"User {i}") for i in range(20)])
        remote = store.claim_batch("issue", "elsewhere0000-4242-beef", 2, lease=2.0)
        assert len(remote.deliveries) == 2
        output = finish(newsletter(root, "send", "issue.md", "--yes"))
    assert "sent 20, failed 0" in output and "possibly duplicated: 2 this run" in output, output
    assert flagged(store) == {"user0@example.org", "user1@example.org"}


@pytest.mark.parametrize(
    "extra", [("--dry-run",), ("--test",), ("--retry-failed",), ("--subscribers", "x.csv"), ("--new-database",)]
)
def test_join_goes_with_no_option_that_needs_the_list(tmp_path: Path, extra: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    from newsletter_mailer.cli import main

    root = make_workspace(tmp_path / "ws", 2525, 3)
    with contextlib.chdir(root):
        result = CliRunner().invoke(main, ["send", "issue.md", "--join", *extra], catch_exceptions=False)
    assert result.exit_code == 2 and "--join helps a running send" in result.output, result.output
    assert not (root / ".newsletter" / "newsletter.db").exists()  # nothing was opened or sent
