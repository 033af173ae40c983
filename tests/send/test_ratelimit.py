"""ratelimit.py: messages per second and the hourly cap hold the sender back."""

from __future__ import annotations

import asyncio
import time

import pytest

from newsletter_mailer.send.ratelimit import RateLimiter


def test_no_limit_does_not_wait() -> None:
    limiter = RateLimiter()
    assert limiter.unlimited

    async def many() -> None:
        for _ in range(1000):
            await limiter.acquire()

    asyncio.run(asyncio.wait_for(many(), timeout=5))


def test_rate_spaces_messages_out() -> None:
    limiter = RateLimiter(per_second=50)

    async def eleven() -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(11)))
        return time.monotonic() - started

    assert asyncio.run(eleven()) >= 10 / 50 * 0.95  # a lower bound: never faster than the rate


def test_hourly_cap_blocks_the_next_message() -> None:
    limiter = RateLimiter(per_hour=3)

    async def fourth() -> None:
        for _ in range(3):
            await asyncio.wait_for(limiter.acquire(), timeout=1)
        await asyncio.wait_for(limiter.acquire(), timeout=0.3)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(fourth())
