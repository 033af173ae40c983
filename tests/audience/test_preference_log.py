"""audience/preference_log.py on both stores: every change kept with its consent record, the newest
one current, addresses without regard to case."""

from __future__ import annotations

import json
import time

from newsletter_mailer.audience.choices import Choice
from newsletter_mailer.audience.preference_log import PreferenceLog
from newsletter_mailer.store.base import Store

OFFERED = ("Diary", "Campaigns")


def test_the_newest_change_is_current_and_every_change_is_kept(store: Store) -> None:
    log = PreferenceLog(store)
    assert log.current("ann@example.org") is None
    log.record("Ann@example.org", Choice(("Diary",)), offered=OFFERED, ip="192.0.2.1", source="preferences page")
    time.sleep(0.01)
    log.record("ann@example.org", Choice((), 2e9), offered=OFFERED, ip="2001:db8::1", source="preferences page")
    log.record("bob@example.org", Choice(None, 2e9), offered=(), ip="", source="preferences page")
    assert log.current("ANN@example.org") == Choice((), 2e9)
    assert log.current("bob@example.org") == Choice(None, 2e9)  # topics never chosen stay unchosen
    changes = list(store.iter_preferences())
    assert [(c.address, c.ip) for c in changes] == [
        ("Ann@example.org", "192.0.2.1"),
        ("ann@example.org", "2001:db8::1"),
        ("bob@example.org", ""),
    ]
    assert json.loads(changes[0].shown) == {"topics": ["Diary", "Campaigns"], "pause_months": [1, 3, 6]}
    assert json.loads(changes[0].topics or "") == ["Diary"] and changes[2].topics is None
    choices = log.choices(OFFERED, now=1.9e9)
    assert set(choices.choices) == {"ann@example.org", "bob@example.org"} and choices.paused("ANN@example.org")


def test_the_same_change_copied_twice_is_kept_once(store: Store) -> None:
    log = PreferenceLog(store)
    log.record("cy@example.org", Choice(("Diary",)), offered=OFFERED, ip="192.0.2.1", source="preferences page")
    (change,) = store.iter_preferences()
    assert store.add_preference(change) is False and len(list(store.iter_preferences())) == 1


def test_the_readers_paused_since_a_moment_are_those_whose_newest_change_pauses_them(store: Store) -> None:
    """What a running send asks every few seconds (send/engine.py honour_pauses)."""
    log = PreferenceLog(store)
    future = time.time() + 86400
    log.record("Ann@example.org", Choice(None, future), offered=(), ip="", source="preferences page")
    log.record("bob@example.org", Choice(None, future), offered=(), ip="", source="preferences page")
    time.sleep(0.01)
    middle = time.time()
    time.sleep(0.01)
    log.record("BOB@example.org", Choice(None, 0.0), offered=(), ip="", source="preferences page")  # resumed
    log.record("cy@example.org", Choice(None, future), offered=(), ip="", source="preferences page")
    log.record("dee@example.org", Choice(("Diary",), time.time() - 1), offered=OFFERED, ip="", source="test")
    assert sorted(store.readers_paused_since(0.0)) == ["Ann@example.org", "cy@example.org"]
    assert store.readers_paused_since(middle) == ["cy@example.org"]  # Ann's pause is older
    assert store.readers_paused_since(time.time() + 1) == []
