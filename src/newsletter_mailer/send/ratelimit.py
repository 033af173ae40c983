"""Pacing for relays with quotas: messages per second, and an optional cap per rolling hour.

Kept apart from rendering and transport, as listmonk does: workers ask before each message. The
pace and the cap live in the store, so they hold for the whole send across every worker process
and machine, and for every issue sent through the same relay. The pace is taken from the store a
block of steps at a time (a quarter of a second's worth), the next block while the last step of
this one is waited for: a round trip per block, not per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Pacing", "RateLimiter"]

CAP_RECHECK = 60.0  # a worker waiting for the hourly cap asks again at least this often
BLOCK_SECONDS = 0.25  # the steps of the pace a sender takes from the store at once cover this long
BLOCK_MOST = 64
T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]


async def _inline(call: Callable[..., T], *args: Any) -> T:
    return call(*args)


class Pacing(Protocol):
    def pace(self, name: str, interval: float) -> float: ...
    def take_slot(self, name: str, per_hour: int) -> float: ...


class RateLimiter:
    def __init__(
        self, store: Pacing, relay: str, per_second: float = 0.0, per_hour: int = 0, *, run: Runner = _inline
    ) -> None:
        """``run``: how a store call is made (a sender's goes to the store's own thread, store/offloop.py)."""
        self.store = store
        self.run = run
        self.relay = relay
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.per_hour = per_hour
        self.block = max(1, min(BLOCK_MOST, int(per_second * BLOCK_SECONDS)))
        self.steps: deque[float] = deque()  # when the steps taken and not yet used are due (monotonic)
        self.taking: asyncio.Task[None] | None = None

    @property
    def unlimited(self) -> bool:
        return not self.interval and not self.per_hour

    async def acquire(self) -> None:
        """Wait for a slot in the hour (if capped), then for the next step of the pace."""
        if self.per_hour:
            while (wait := await self.run(self.store.take_slot, f"{self.relay} per hour", self.per_hour)) > 0:
                await asyncio.sleep(min(wait, CAP_RECHECK))
        if self.interval:
            wait = await self.next_step() - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    async def next_step(self) -> float:
        """When this message's step of the pace is due (monotonic clock)."""
        while not self.steps:
            await asyncio.shield(self.taking or self.take_block())
        due = self.steps.popleft()
        if not self.steps and self.taking is None:
            self.take_block()  # the next block while this step is waited for
        return due

    def take_block(self) -> asyncio.Task[None]:
        self.taking = asyncio.create_task(self.take())
        # A block taken ahead that fails is said when the next step is asked for.
        self.taking.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self.taking

    async def take(self) -> None:
        """``block`` steps in a row from the shared pace: one round trip to the store."""
        try:
            wait = await self.run(self.store.pace, f"{self.relay} per second", self.interval * self.block)
            first = time.monotonic() + wait
            self.steps.extend(first + i * self.interval for i in range(self.block))
        finally:
            self.taking = None
