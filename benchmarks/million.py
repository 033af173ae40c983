"""A 1,000,000-row list: how long `newsletter send` takes from its start to the first message
handed to the relay, the send's peak memory by then (and a few seconds into sending), and how
long `newsletter subscribers check` takes on the list. The list is generated in a temporary
folder; the relay is a minimal SMTP sink on loopback that notes when the first message came.

    python benchmarks/million.py [--rows 1000000] [--store temporary]

Targets (issue 19): first message within 45 s, peak memory at most 150 MB, `subscribers check`
within 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, make_workspace, temporary_postgres

__all__ = ["main"]


class FirstMessage:
    """A minimal SMTP sink on loopback that accepts everything and notes the first message's time."""

    def __init__(self) -> None:
        self.first = 0.0
        self.port = 0
        self.loop = asyncio.new_event_loop()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):  # the benchmark stops the sender mid-conversation
            await self.converse(reader, writer)
        writer.close()

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink\r\n")
        data = False
        while line := await reader.readline():
            if data:
                if line == b".\r\n":
                    data = False
                    self.first = self.first or time.monotonic()
                    writer.write(b"250 ok\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = True
                writer.write(b"354 go\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            elif verb == b"EHLO":
                writer.write(b"250-sink\r\n250 PIPELINING\r\n")
            else:
                writer.write(b"250 ok\r\n")

    def start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self.session, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        threading.Thread(target=self.loop.run_until_complete, args=(serve(),), daemon=True).start()
        ready.wait(10)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def newsletter(root: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEWSLETTER_SECRET": "benchmark-secret-" * 3}
    command = [sys.executable, "-m", "newsletter_mailer", *args]
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_check(root: Path) -> tuple[float, float, float]:
    """(seconds, peak MB, CPU seconds) of ``subscribers check``."""
    started = time.monotonic()
    check = newsletter(root, "subscribers", "check")
    peak, cpu = 0.0, 0.0
    while check.poll() is None:
        with contextlib.suppress(OSError, IndexError, ValueError):  # it may end between two reads
            peak, cpu = max(peak, peak_mb(check.pid)), cpu_seconds(check.pid)
        time.sleep(0.05)
    return time.monotonic() - started, peak, cpu


def time_first_message(root: Path, sink: FirstMessage, sending_for: float) -> tuple[float, float, float, float]:
    """(seconds to the first message, peak MB by then, peak MB ``sending_for`` seconds later, CPU
    seconds of the sender by the first message: on a shared machine the one figure that does not
    depend on what else runs)."""
    started = time.monotonic()
    send = newsletter(root, "send", "issue.md", "--yes", "--force")  # the example settings are placeholders
    peak, cpu = 0.0, 0.0
    while not sink.first:
        if send.poll() is not None:
            said = send.stderr.read().decode()[-500:] if send.stderr else ""
            raise SystemExit(f"the send ended before its first message: {said}")
        peak, cpu = max(peak, peak_mb(send.pid)), cpu_seconds(send.pid)
        time.sleep(0.02)
    first, at_first = sink.first - started, peak
    while time.monotonic() < sink.first + sending_for and send.poll() is None:
        peak = max(peak, peak_mb(send.pid))
        time.sleep(0.05)
    stopping = time.monotonic()
    send.send_signal(signal.SIGINT)
    send.wait(600)  # a loaded machine (or a large WAL to fold back into the file) can take minutes
    print(f"send: stopped {time.monotonic() - stopping:.1f} s after its Ctrl+C")
    return first, at_first, peak, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", default="", help="'temporary': a PostgreSQL store of its own")
    parser.add_argument("--skip-check", action="store_true", help="only the send")
    args = parser.parse_args()
    sink = FirstMessage()
    sink.start()
    with tempfile.TemporaryDirectory() as tmp:
        made = time.monotonic()
        root = make_workspace(Path(tmp) / "ws", args.rows, port=sink.port, concurrency=10)
        size = (root / "subscribers.csv").stat().st_size >> 20
        print(f"{args.rows} rows written in {time.monotonic() - made:.1f} s ({size} MB)")
        checked, check_peak, check_cpu = time_check(root) if not args.skip_check else (0.0, 0.0, 0.0)
        print(f"subscribers check: {checked:.1f} s (CPU {check_cpu:.1f} s), peak {check_peak:.0f} MB")
        if args.store == "temporary":
            with temporary_postgres() as url:
                text = (root / "newsletter.toml").read_text()
                (root / "newsletter.toml").write_text(f'[store]\nurl = "{url}"\n\n{text}')
                subprocess.run([sys.executable, "-m", "newsletter_mailer", "store", "migrate"], cwd=root, check=True)
                first, at_first, peak, cpu = time_first_message(root, sink, 5.0)
        else:
            first, at_first, peak, cpu = time_first_message(root, sink, 5.0)
        print(
            f"send: first message after {first:.1f} s (CPU {cpu:.1f} s), peak {at_first:.0f} MB by then, "
            f"{peak:.0f} MB 5 s later"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load}, repository {REPO.name})")


if __name__ == "__main__":
    main()
