"""Pacing for relays with quotas: messages per second, and an optional cap per rolling hour.

Kept apart from rendering and transport, as listmonk does: workers ask before each message. The
pace and the cap live in the store, so they hold for the whole send across every worker process
and machine, and for every issue sent through the same relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Pacing", "RateLimiter"]

CAP_RECHECK = 60.0  # a worker waiting for the hourly cap asks again at least this often
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

    @property
    def unlimited(self) -> bool:
        return not self.interval and not self.per_hour

    async def acquire(self) -> None:
        """Wait for a slot in the hour (if capped), then for the next step of the pace."""
        if self.per_hour:
            while (wait := await self.run(self.store.take_slot, f"{self.relay} per hour", self.per_hour)) > 0:
                await asyncio.sleep(min(wait, CAP_RECHECK))
        if self.interval:
            wait = await self.run(self.store.pace, f"{self.relay} per second", self.interval)
            if wait > 0:
                await asyncio.sleep(wait)
