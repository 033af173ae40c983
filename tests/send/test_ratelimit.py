"""ratelimit.py: the pace and the hourly cap hold the sender back, through the store, so every
worker on every machine shares them."""

from __future__ import annotations

import asyncio
import time

import pytest

from newsletter_mailer.send.ratelimit import RateLimiter
from newsletter_mailer.store.base import Store


class Counting:
    """The store's pacing, counting every call the limiter makes."""

    def __init__(self, store: Store) -> None:
        self.store, self.calls = store, 0

    def pace(self, name: str, interval: float) -> float:
        self.calls += 1
        return self.store.pace(name, interval)

    def take_slot(self, name: str, per_hour: int) -> float:
        self.calls += 1
        return self.store.take_slot(name, per_hour)


def test_no_limit_does_not_wait_or_write(store: Store) -> None:
    counting = Counting(store)
    limiter = RateLimiter(counting, "relay:25")
    assert limiter.unlimited

    async def many() -> None:
        for _ in range(1000):
            await limiter.acquire()

    asyncio.run(asyncio.wait_for(many(), timeout=5))
    assert counting.calls == 0  # no round trip to the store per message when nothing is limited
    assert store.pace("relay:25 per second", 1.0) == 0.0  # the first step of a pace nobody used


def test_rate_spaces_messages_out(store: Store) -> None:
    limiter = RateLimiter(store, "relay:25", per_second=50)

    async def eleven() -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(11)))
        return time.monotonic() - started

    assert asyncio.run(eleven()) >= 10 / 50 * 0.9  # a lower bound: never faster than the rate


def test_the_pace_is_taken_a_block_at_a_time_not_a_round_trip_per_message(store: Store) -> None:
    """At 200 a second a sender asks the store for a quarter second's steps (50) at once, the
    next block while it waits for the last step: 100 messages, three calls, still at the rate."""
    counting = Counting(store)
    limiter = RateLimiter(counting, "relay:25", per_second=200)

    async def hundred() -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(100)))
        return time.monotonic() - started

    assert asyncio.run(hundred()) >= 99 / 200 * 0.9
    assert counting.calls == 3
    # the steps it took are gone for everyone: the next taker waits for the end of its blocks
    assert store.pace("relay:25 per second", 0.005) > 0  # about 0.25 s of them are left


def test_two_limiters_on_one_store_share_the_rate(store: Store) -> None:
    """Two workers (two limiters, as two processes would have) on one relay split its rate."""
    first, second = (RateLimiter(store, "relay:25", per_second=40) for _ in range(2))

    async def both() -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for limiter in (first, second) for _ in range(6)))
        return time.monotonic() - started

    assert asyncio.run(both()) >= 11 / 40 * 0.9  # 12 messages at 40/s between them, not 6 each


def test_hourly_cap_blocks_the_next_message_for_every_limiter(store: Store) -> None:
    one, other = RateLimiter(store, "relay:25", per_hour=3), RateLimiter(store, "relay:25", per_hour=3)

    async def fourth() -> None:
        for limiter in (one, one, other):
            await asyncio.wait_for(limiter.acquire(), timeout=1)
        await asyncio.wait_for(other.acquire(), timeout=0.3)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(fourth())
    assert store.take_slot("relay:25 per hour", 3) > 3500  # the first slot frees in about an hour
    assert store.take_slot("other:25 per hour", 3) == 0.0  # another relay has its own cap
