"""A loopback TCP proxy that delays every chunk by N ms each way, to measure a sender against a
store (or relay) across a network: 5 ms each way is a same-region cloud database (10 ms round
trip), 20 ms each way a home connection to one.

    python benchmarks/latency_proxy.py --to 127.0.0.1:5432 --delay-ms 5   # prints the port it listens on

Each direction keeps its order: a chunk is written once it is due, after the chunks before it.
Used in-process by throughput.py (``LatencyProxy`` runs its own event loop in a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["LatencyProxy", "latency_proxy"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy one direction, each chunk ``delay`` seconds after it arrived."""
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
        await asyncio.gather(
            _pipe(reader, upstream_writer, self.delay),
            _pipe(upstream_reader, writer, self.delay),
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
def latency_proxy(target_host: str, target_port: int, delay_ms: float) -> Iterator[int]:
    """A proxy to the target in a thread of its own; yields the loopback port it listens on."""
    proxy = LatencyProxy(target_host, target_port, delay_ms)
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(proxy.serve(started, stop),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the latency proxy did not start")
    try:
        yield proxy.port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, required=True, help="added to each chunk, each way")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    with latency_proxy(host, int(port), args.delay_ms) as listening:
        print(f"127.0.0.1:{listening} -> {args.to}, {args.delay_ms:g} ms each way; Ctrl+C stops", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
