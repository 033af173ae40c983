"""Shared set-up for the benchmarks: a workspace with N subscribers and the example issue,
Postfix's smtp-sink on a loopback port, and timing helpers."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


LARGE_SECTIONS = 13  # the large monthly issue: about 53 KB per message as sent (88 KB before issue 21)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_workspace(
    root: Path, subscribers: int, *, port: int = 0, concurrency: int = 8, extra_sections: int = 2
) -> Path:
    """The example issue (about 40 KB as sent) to ``subscribers`` generated addresses."""
    root.mkdir(parents=True, exist_ok=True)
    host = f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\n' if port else ""
    (root / "newsletter.toml").write_text(
        (REPO / "newsletter.toml")
        .read_text()
        .replace('subscribers = "subscribers.csv.example"', 'subscribers = "subscribers.csv"')
        .replace("concurrency = 4", f"concurrency = {concurrency}\nmessages_per_connection = 0\n{host}")
    )
    issue = (REPO / "issues" / "example.md").read_text()
    filler = "".join(
        f"\n## More news {i}\n\n" + "Volunteers kept busy with many useful things this month. " * 12 + "\n"
        for i in range(extra_sections)
    )
    (root / "issue.md").write_text(issue + filler)
    with (root / "subscribers.csv").open("w") as handle:
        handle.write("email,name,branch\n")
        for i in range(subscribers):
            handle.write(f"member{i}@example.org,Member {i},Branch {i % 7}\n")
    return root


@contextlib.contextmanager
def smtp_sink(delay: int = 0) -> Iterator[int]:
    """Postfix's smtp-sink on loopback (Debian package postfix); yields its port."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        sys.exit("smtp-sink not found: apt-get install postfix")
    port = free_port()
    args = [binary, "-u", "nobody", "-c"] + (["-w", str(delay)] if delay else []) + [f"127.0.0.1:{port}", "1000"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def smtp_source_seconds(port: int, sessions: int, messages: int, size: int) -> float:
    return smtp_source_run(port, sessions, messages, size)[0]


def smtp_source_run(port: int, sessions: int, messages: int, size: int) -> tuple[float, float]:
    """Postfix's smtp-source sending ``messages`` of ``size`` bytes: (seconds, CPU seconds user+sys)."""
    import resource

    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            binary,
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "news@example.org",
            "-t",
            "member@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """A PostgreSQL cluster of its own on a loopback port (initdb and pg_ctl, as the tests start
    theirs), stopped and removed after; yields its URL, the password in NEWSLETTER_STORE_PASSWORD."""
    import glob
    import os
    import signal
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parts[-2]))
    if not bins:
        sys.exit("PostgreSQL not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="newsletter-bench-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    (root / "pw").write_text("bench\n")
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    data, port = root / "data", free_port()
    init = [f"{bins[-1]}/initdb", "-D", str(data), "-U", "bench", "--auth=scram-sha-256", f"--pwfile={root / 'pw'}"]
    subprocess.run([*as_postgres, *init], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    start = [f"{bins[-1]}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"]
    subprocess.run([*as_postgres, *start], check=True, capture_output=True)
    os.environ["NEWSLETTER_STORE_PASSWORD"] = "bench"
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)  # fast shutdown
            time.sleep(2)
        shutil.rmtree(root, ignore_errors=True)
