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


LARGE_SECTIONS = 13  # the large monthly issue: about 83 KB per message as sent


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
