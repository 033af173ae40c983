"""A loopback TCP proxy that delays every chunk by N ms each way, to measure a sender against a
store (or relay) across a network: 5 ms each way is a same-region cloud database (10 ms round
trip), 20 ms each way a home connection to one.

    python benchmarks/latency_proxy.py --to 127.0.0.1:5432 --delay-ms 5   # prints the port it listens on

Each direction keeps its order: a chunk is written once it is due, after the chunks before it.
throughput.py runs it as a process of its own (``proxy_process``), so that relaying the store's
traffic takes no time from the sender's interpreter (a thread of the sender would share its GIL
and stretch every delay while the sender is busy); on exit it prints the round trips its clients
made (a chunk from a client after the server answered; chunks sent back to back count once).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

__all__ = ["LatencyProxy", "ProxyProcess", "latency_proxy", "proxy_process"]


class _Turns:
    """Round trips on one connection, counted as the client's turns: a chunk from the client after
    the server has answered (chunks the client sends back to back, as a pipeline does, are one)."""

    def __init__(self, total: list[int]) -> None:
        self.total = total
        self.server_spoke = True

    def client(self) -> None:
        if self.server_spoke:
            self.total[0] += 1
            self.server_spoke = False

    def server(self) -> None:
        self.server_spoke = True


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, seen: Callable[[], None]
) -> None:
    """Copy one direction, each chunk ``delay`` seconds after it arrived (``seen`` as it arrives)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with suppress(OSError):
            writer.write_eof()

    sending = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            seen()
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    finally:
        queue.put_nowait((time.monotonic() + delay, b""))
        with suppress(OSError, ConnectionError):
            await sending


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, delay_ms: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay_ms / 1000
        self.port = 0
        self.clients: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.trips = [0]  # round trips of every client so far (_Turns)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.clients.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, upstream_writer))
        turns = _Turns(self.trips)
        await asyncio.gather(
            _pipe(reader, upstream_writer, self.delay, turns.client),
            _pipe(upstream_reader, writer, self.delay, turns.server),
            return_exceptions=True,
        )
        for w in (writer, upstream_writer):
            w.close()

    async def serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await stop.wait()
            for writer in self.writers:  # each pipe then reads its end and finishes
                writer.transport.abort()
            await asyncio.wait(self.clients, timeout=5) if self.clients else None


@contextmanager
def latency_proxy(target_host: str, target_port: int, delay_ms: float) -> Iterator[LatencyProxy]:
    """A proxy to the target in a thread of its own; yields it (``port``: where it listens on
    loopback; ``trips[0]``: how many round trips its clients have made so far)."""
    proxy = LatencyProxy(target_host, target_port, delay_ms)
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(proxy.serve(started, stop),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the latency proxy did not start")
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


class ProxyProcess:
    """A latency proxy in a process of its own: ``port`` where it listens, ``trips`` (once it has
    ended) the round trips its clients made."""

    def __init__(self) -> None:
        self.port = 0
        self.trips = 0


@contextmanager
def proxy_process(target_host: str, target_port: int, delay_ms: float) -> Iterator[ProxyProcess]:
    """Run this file as a process of its own for the ``with`` block."""
    command = [sys.executable, __file__, "--to", f"{target_host}:{target_port}", "--delay-ms", str(delay_ms)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    proxy = ProxyProcess()
    try:
        assert child.stdout is not None
        proxy.port = int(child.stdout.readline().split()[0].rpartition(":")[2])
        yield proxy
    finally:
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
        proxy.trips = int(out.split()[-1]) if out.strip() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, required=True, help="added to each chunk, each way")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    with latency_proxy(host, int(port), args.delay_ms) as proxy:
        print(f"127.0.0.1:{proxy.port} -> {args.to}, {args.delay_ms:g} ms each way; Ctrl+C stops", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()
    print(f"round trips: {proxy.trips[0]}", flush=True)


if __name__ == "__main__":
    main()
