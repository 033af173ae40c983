"""offloop.py: a store reached from an event loop without blocking it. ``Lanes`` keeps several
sessions busy at once, opening another only when all are waiting, and makes do with the sessions
it has when the server refuses more."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from newsletter_mailer.errors import StoreUnavailable
from newsletter_mailer.store.offloop import Lanes, OffLoop


class Session:
    """A session whose every call is a round trip of ``trip`` seconds (its thread waits)."""

    opened = 0

    def __init__(self, trip: float) -> None:
        self.trip = trip
        self.threads: set[int] = set()
        self.calls = 0
        self.closed = False

    def call(self) -> int:
        self.threads.add(threading.get_ident())
        self.calls += 1
        time.sleep(self.trip)
        return id(self)


def opener(trip: float, allowed: int, made: list[Session]) -> Session:
    if len(made) >= allowed:
        raise StoreUnavailable("the PostgreSQL store failed (too many clients already)")
    made.append(Session(trip))
    return made[-1]


def run_calls(lanes: Lanes[Session], count: int) -> tuple[float, list[int]]:
    async def calls() -> tuple[float, list[int]]:
        started = time.monotonic()
        ids = await asyncio.gather(*(lanes.run(Session.call) for _ in range(count)))
        await lanes.close(lambda session: setattr(session, "closed", True))
        return time.monotonic() - started, list(ids)

    return asyncio.run(calls())


def test_calls_that_wait_overlap_on_sessions_opened_as_needed() -> None:
    made: list[Session] = []
    lanes = Lanes(lambda: opener(0.5, 10, made), most=4)
    elapsed, ids = run_calls(lanes, 8)
    assert len(made) == 4  # no more than allowed, though eight calls waited
    assert elapsed < 8 * 0.5 / 2  # overlapped (1 s at best): one session would take 4 s
    assert set(ids) == {id(session) for session in made}
    assert all(len(session.threads) == 1 for session in made)  # each session stays on its own thread
    assert all(session.closed for session in made)


def test_a_session_given_is_used_first_and_not_closed() -> None:
    mine, made = Session(0.0), list[Session]()
    own = OffLoop()
    try:
        lanes = Lanes(lambda: opener(0.0, 10, made), most=3, first=(mine, own))
        run_calls(lanes, 1)
    finally:
        own.close()
    assert mine.calls == 1 and not made and not mine.closed


def test_a_server_that_refuses_more_sessions_leaves_the_calls_on_those_it_has() -> None:
    made: list[Session] = []
    lanes = Lanes(lambda: opener(0.05, 2, made), most=5)
    _, ids = run_calls(lanes, 12)
    assert len(ids) == 12 and len(made) == 2
    assert lanes.most == 2  # it stopped trying


def test_no_session_at_all_is_the_callers_error() -> None:
    lanes: Lanes[Session] = Lanes(lambda: opener(0.0, 0, []), most=2)
    with pytest.raises(StoreUnavailable, match="too many clients"):
        run_calls(lanes, 1)
