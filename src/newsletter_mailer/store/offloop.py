"""A store reached from an event loop without blocking it: one thread of its own owns the
connection and runs every call in the order asked, so a slow or distant database delays the
calls that wait for it and nothing else (a relay's replies, the other connections' sends).

``Lanes`` keeps several such sessions busy at once: across a network each call is a round trip
that mostly waits, so calls that do not depend on each other (the claims of a sender, its
batches of outcomes) overlap instead of queueing behind one another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, Generic, TypeVar

__all__ = ["Lane", "Lanes", "OffLoop"]

T = TypeVar("T")
S = TypeVar("S")


class OffLoop:
    """``await off.run(store.claim_batch, ...)``: the call runs on the store's thread."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(call, *args))

    def close(self) -> None:
        """Wait for the call under way, if any, and end the thread."""
        self._thread.shutdown(wait=True)


class Lane(Generic[S]):
    """One session and the thread that owns it."""

    def __init__(self, session: S, io: OffLoop, *, own: bool) -> None:
        self.session, self.io, self.own = session, io, own

    async def run(self, call: Callable[[S], T]) -> T:
        return await self.io.run(call, self.session)


class Lanes(Generic[S]):
    """Up to ``most`` sessions of one store, each on a thread of its own. A call goes to a free
    session; when all are busy, another is opened (by ``opener``, on its own thread) while the
    call waits for whichever frees first. ``first``, if given, is a session the caller already
    has (and keeps: it is not closed here)."""

    def __init__(self, opener: Callable[[], S], most: int, first: tuple[S, OffLoop] | None = None) -> None:
        self.opener = opener
        self.most = max(1, most)
        self.lanes: list[Lane[S]] = []
        self.free: list[Lane[S]] = []
        self.opening: asyncio.Task[None] | None = None
        self.freed = asyncio.Event()
        if first is not None:
            lane = Lane(first[0], first[1], own=False)
            self.lanes.append(lane)
            self.free.append(lane)

    async def run(self, call: Callable[[S], T]) -> T:
        """``call(session)`` on a free session."""
        lane = await self.take()
        try:
            return await lane.run(call)
        finally:
            self.give(lane)

    def busy(self) -> bool:
        """Every session opened so far is taken (and there is at least one)."""
        return bool(self.lanes) and not self.free

    def give(self, lane: Lane[S]) -> None:
        """A session taken is free again."""
        self.free.append(lane)
        self.freed.set()

    async def take(self) -> Lane[S]:
        """A free session, for the caller alone until it gives it back."""
        while not self.free:
            if self.opening is None and len(self.lanes) < self.most:
                self.opening = asyncio.create_task(self._open())
            self.freed.clear()
            await self.freed.wait()
            if self.opening is not None and self.opening.done():
                opened, self.opening = self.opening, None
                failed = opened.exception()
                if failed is not None and not self.lanes:
                    raise failed  # no session at all: the caller's error
        return self.free.pop()

    async def _open(self) -> None:
        io = OffLoop()
        try:
            session = await io.run(self.opener)
        except BaseException:
            io.close()
            self.most = max(1, len(self.lanes))  # the server refuses more (too many clients): do with these
            self.freed.set()
            raise
        lane = Lane(session, io, own=True)
        self.lanes.append(lane)
        self.free.append(lane)
        self.freed.set()

    async def close(self, closer: Callable[[S], None]) -> None:
        """Wait for a session being opened, then end every thread and close the sessions opened here."""
        if self.opening is not None:
            with suppress(Exception):
                await asyncio.shield(self.opening)
        for lane in self.lanes:
            lane.io.close()
            if lane.own:
                with suppress(Exception):
                    closer(lane.session)
