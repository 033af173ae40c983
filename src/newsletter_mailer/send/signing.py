"""DKIM signatures made off the event loop, a batch of claimed rows at a time, ahead of need.

An RSA-2048 signature takes about 0.3 ms here, as long as the rest of a message's work on the
loop, and OpenSSL lets go of the GIL while it works: on a thread of its own it runs on another
core while the loop serves the connections. The messages are filled and hashed on the loop (the
Python of it would only queue for the GIL on a thread: measured, it made the send slower); the
key operations of every row of a claim go to the thread as one task, as the rows come in, so the
signatures are ready by the time a connection takes the row and a thread hands the GIL back once
per batch, not several times per message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..audience.subscribers import Subscriber
from ..compose.dkim import Unsigned, sign_all
from ..compose.envelope import Draft, Envelope
from ..compose.translations import Filler
from ..errors import MergeFieldError
from ..store.journal import Delivery

__all__ = ["AheadSigner", "signing_threads"]


def signing_threads() -> int:
    """Threads that sign: the cores but the loop's, at least one, at most four."""
    return min(4, max(1, (os.cpu_count() or 2) - 1))


def _sign_batch(batch: list[list[Unsigned]]) -> list[list[bytes]]:
    return [sign_all(unsigned) for unsigned in batch]


class AheadSigner:
    """``prepare`` the rows of each claim as it comes in; ``envelope`` a row when its turn comes."""

    def __init__(self, template: Filler, threads: int) -> None:
        self.template = template
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="sign")
        self.ready: dict[int, tuple[Draft, asyncio.Future[list[list[bytes]]], int]] = {}

    def prepare(self, jobs: Iterable[Delivery]) -> None:
        """Fill these rows' messages now and start their signatures, as one task."""
        drafts: list[tuple[int, Draft]] = []
        for job in jobs:
            try:
                drafts.append((job.id, self.template.draft(_reader(job), job.id)))
            except MergeFieldError:
                continue  # the row fails with the reason when its turn comes (envelope fills it again)
        if not drafts:
            return
        batch = [draft.unsigned for _, draft in drafts]
        signed = asyncio.wrap_future(self.pool.submit(_sign_batch, batch))
        for index, (row, draft) in enumerate(drafts):
            self.ready[row] = (draft, signed, index)

    async def envelope(self, job: Delivery) -> Envelope:
        """The row's signed message (filled now if it was not prepared); MergeFieldError if it
        cannot be filled."""
        prepared = self.ready.pop(job.id, None)
        if prepared is None:
            draft = self.template.draft(_reader(job), job.id)
            signatures = await asyncio.wrap_future(self.pool.submit(sign_all, draft.unsigned))
            return draft.finish(signatures)
        draft, signed, index = prepared
        return draft.finish((await signed)[index])

    def close(self) -> None:
        """Wait for the signatures under way and end the threads; rows prepared and never sent
        are forgotten (they were released or will be claimed again)."""
        self.pool.shutdown(wait=True)
        self.ready.clear()


def _reader(job: Delivery) -> Subscriber:
    return Subscriber(job.address, job.name, job.fields)
