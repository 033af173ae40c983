"""Pacing for relays with quotas: messages per second, and an optional cap per hour.

Kept apart from rendering and transport, as listmonk does: workers ask before each message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    def __init__(self, per_second: float = 0.0, per_hour: int = 0) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.per_hour = per_hour
        self._next = 0.0
        self._hour: deque[float] = deque()
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return not self.interval and not self.per_hour

    async def acquire(self) -> None:
        if self.unlimited:
            return
        async with self._lock:
            now = time.monotonic()
            if self.per_hour:
                while self._hour and now - self._hour[0] >= 3600:
                    self._hour.popleft()
                if len(self._hour) >= self.per_hour:
                    await asyncio.sleep(3600 - (now - self._hour[0]))
                    now = time.monotonic()
                    self._hour.popleft()
            if self.interval:
                wait = self._next - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    now = time.monotonic()
                self._next = max(now, self._next) + self.interval
            if self.per_hour:
                self._hour.append(now)
