"""A store reached from an event loop without blocking it: one thread of its own owns the
connection and runs every call in the order asked, so a slow or distant database delays the
calls that wait for it and nothing else (a relay's replies, the other connections' sends)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["OffLoop"]

T = TypeVar("T")


class OffLoop:
    """``await off.run(store.claim_batch, ...)``: the call runs on the store's thread."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(call, *args))

    def close(self) -> None:
        """Wait for the call under way, if any, and end the thread."""
        self._thread.shutdown(wait=True)
