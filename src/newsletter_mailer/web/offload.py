"""The pages' way to the (synchronous) use cases: a bounded pool of threads and a deadline, so a
store that hangs (a PostgreSQL server stopped, SQLite's write lock held) never blocks the event
loop, and no request waits on another: while every thread is taken, or a call outlives its
deadline, the page answers 503 at once instead of queueing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ..errors import StoreUnavailable

__all__ = ["HealthProbe", "Offload"]

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    """At most ``threads`` use cases at once, each answered within ``timeout`` seconds. A call past
    its deadline keeps its thread until the store lets go of it, and counts against the bound."""

    def __init__(self, threads: int = 8, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="newsletter-web")
        self._free = threading.BoundedSemaphore(threads)

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in a thread; StoreUnavailable when none is free or it is too slow."""
        if not self._free.acquire(blocking=False):
            raise StoreUnavailable("every store thread is busy: the store is not answering")
        try:
            future: Future[T] = self._pool.submit(func, *args, **kwargs)
        except RuntimeError:  # the pool was shut down: the server is stopping
            self._free.release()
            raise StoreUnavailable("the server is stopping") from None
        future.add_done_callback(lambda _: self._free.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            raise StoreUnavailable(f"the store did not answer within {self.timeout:g}s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class HealthProbe:
    """``/healthz`` at once, whatever the store does: the answer is the last probe of the store
    that finished within ``fresh`` seconds; a new probe starts in the background when that one is
    getting old; an answer with none fresh waits for it ``wait`` seconds at most (the very first,
    at start, ``first_wait``)."""

    def __init__(
        self,
        offload: Offload,
        probe: Callable[[], object],
        fresh: float = 3.0,
        wait: float = 0.05,
        first_wait: float = 2.0,
    ) -> None:
        self.offload, self.probe, self.fresh, self.wait, self.first_wait = offload, probe, fresh, wait, first_wait
        self._last: tuple[float, bool] | None = None  # when a probe finished, and whether the store answered
        self._running: asyncio.Task[None] | None = None

    async def healthy(self) -> bool:
        now = time.monotonic()
        if self._running is None and (self._last is None or now - self._last[0] > self.fresh / 2):
            self._running = asyncio.create_task(self._probe())
        if self._running is not None and (self._last is None or now - self._last[0] > self.fresh):
            await asyncio.wait({self._running}, timeout=self.first_wait if self._last is None else self.wait)
        last = self._last
        return last is not None and time.monotonic() - last[0] <= self.fresh and last[1]

    async def _probe(self) -> None:
        try:
            await self.offload.run(self.probe)
            self._last = (time.monotonic(), True)
        except Exception:  # any failure of the store is an unhealthy answer, said by the status code
            self._last = (time.monotonic(), False)
        finally:
            self._running = None
