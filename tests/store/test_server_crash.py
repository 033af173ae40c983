"""A crash of PostgreSQL itself in the middle of a send (an immediate stop, or SIGKILL of the
postmaster) at random moments: once the server is back and the send is run again, nobody is
missing and every recipient who got two copies is flagged as possibly duplicated (issue 20 item 4:
with the sender's claims committed asynchronously, they were lost in crash recovery and their
rows came back pending, unflagged, although the relay had their messages)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PG_PASSWORD, PostgresCluster, make_workspace, start_cluster, use_store
from newsletter_mailer.store.postgres import PostgresStore
from smtp_servers import Faults, SMTPTestServer

RECIPIENTS = 300


@pytest.fixture(scope="module")
def crashable() -> Iterator[PostgresCluster]:
    """A cluster of this module's own, since its tests crash it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests skipped: psycopg is not installed (pip install -e '.[test]')")
    root = Path(tempfile.mkdtemp(prefix="newsletter-pg-crash-"))
    started = start_cluster(root)
    try:
        if isinstance(started, str):
            pytest.skip(f"PostgreSQL tests skipped: {started}")
        cluster, _ = started
        try:
            yield cluster
        finally:
            crash(cluster, signal.SIGQUIT)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def postmaster(cluster: PostgresCluster) -> int:
    assert cluster.data is not None
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def crash(cluster: PostgresCluster, how: signal.Signals) -> None:
    """SIGQUIT is what `pg_ctl stop -m immediate` sends (no checkpoint: crash recovery at the next
    start); SIGKILL takes the postmaster alone, its backends then die on their own."""
    pid = postmaster(cluster)
    try:
        os.kill(pid, how)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError("the postmaster did not stop")


def start_again(cluster: PostgresCluster) -> None:
    """Start the crashed cluster (retrying while the dead postmaster's backends still hold its
    shared memory)."""
    deadline = time.monotonic() + 60
    while True:
        started = subprocess.run(cluster.start, capture_output=True, text=True, timeout=90)
        if started.returncode == 0:
            return
        assert time.monotonic() < deadline, started.stdout + started.stderr
        time.sleep(0.2)


def new_store(cluster: PostgresCluster) -> str:
    import psycopg

    name = f"crash{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(cluster.url(), password=PG_PASSWORD, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    with PostgresStore.open(cluster.url(name), PG_PASSWORD, check=False) as store:
        store.migrate()
    return cluster.url(name)


def newsletter(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "NEWSLETTER_STORE_PASSWORD": PG_PASSWORD}
    command = [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"]
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# Several random crash points, each a seed: which signal, and after how many messages.
@pytest.mark.parametrize("seed", range(5))
def test_a_crash_of_the_server_at_any_moment_leaves_nobody_missing_and_every_duplicate_flagged(
    crashable: PostgresCluster, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    how = rng.choice([signal.SIGQUIT, signal.SIGKILL])
    after = rng.randint(1, RECIPIENTS // 2)
    url = new_store(crashable)
    with SMTPTestServer(Faults(delay=rng.choice([0.0, 0.005]))) as smtp:
        root = make_workspace(tmp_path / "ws", smtp.port, RECIPIENTS, smtp_extra="concurrency = 4")
        use_store(root, url)
        send = newsletter(root)
        deadline = time.monotonic() + 60
        while len(smtp.handler.messages) < after:
            assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
            time.sleep(0.001)
        crash(crashable, how)
        output = send.communicate(timeout=120)[0]
        start_again(crashable)
        rerun = newsletter(root)
        rerun_output = rerun.communicate(timeout=120)[0]
    said = f"seed {seed}: {how.name} after {after} messages"
    assert send.returncode == 1 and "Traceback" not in output, f"{said}\n{output}"
    assert rerun.returncode == 0, f"{said}\n{rerun_output}"
    copies = smtp.handler.copies()
    assert set(copies) == {f"user{i}@example.org" for i in range(RECIPIENTS)}, said
    with PostgresStore.open(url, PG_PASSWORD) as store:
        flagged = {row.address for row in store.journal_rows() if row.resent}
        assert store.counts("issue")["sent"] == RECIPIENTS
    twice = {address for address, n in copies.items() if n > 1}
    assert twice <= flagged, f"{said}: {len(twice - flagged)} duplicates nobody was told about"
