"""audience/signup_log.py on both stores: a request becomes a signup only through its link, the
confirmation and the lifted suppression commit together, the mail limits hold for connections
racing each other, and hostile values are stored as given."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PG_PASSWORD, refuse_inserts
from newsletter_mailer.audience import signup_log
from newsletter_mailer.audience.signup import RequestRef
from newsletter_mailer.audience.signup_log import PendingSignup, SignupLog
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.rows import SignupMail, SignupRequest
from newsletter_mailer.store.sqlite import SQLiteStore

NIA = Subscriber("Nia@Example.org", "Nia", (("home_town", "Riverton"),))


def another_connection(store: Store) -> Store:
    """The same store opened again, as another process would."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore.open(store.path)
    from newsletter_mailer.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore.open(store.url, PG_PASSWORD)


def ref(pending: PendingSignup) -> RequestRef:
    return pending.ref


def test_a_request_becomes_a_signup_only_through_its_link(store: Store) -> None:
    log = SignupLog(store)
    first = log.request(NIA, "192.0.2.1", "2024-06")
    second = log.request(Subscriber("nia@example.org", "Nia again"), "192.0.2.2", "2024-06")
    assert first.id != second.id and log.pending(ref(first)) == first
    assert log.pending(replace(first.ref, requested=first.ref.requested - 1)) is None  # the link names the moment too
    assert log.confirm(replace(first.ref, requested=first.ref.requested + 1), "192.0.2.9") is None
    assert log.confirmed() == []
    assert log.confirm(ref(first), "198.51.100.7") == "Nia@Example.org"
    [consent] = log.confirmed()
    assert consent.subscriber == Subscriber("Nia@Example.org", "Nia", (("home_town", "Riverton"),))
    assert (consent.request_ip, consent.confirm_ip, consent.wording) == ("192.0.2.1", "198.51.100.7", "2024-06")
    assert consent.requested == first.requested <= consent.confirmed
    # Every request for the address, in any case, went with the confirmation: its link is used up.
    assert log.pending(ref(second)) is None and log.confirm(ref(second), "192.0.2.2") is None
    assert log.confirm(ref(first), "198.51.100.7") is None


def test_confirming_again_replaces_the_consent_record(store: Store) -> None:
    log = SignupLog(store)
    log.confirm(ref(log.request(NIA, "192.0.2.1", "2024-06")), "192.0.2.1")
    again = log.request(Subscriber("NIA@example.org", "Nia B"), "192.0.2.3", "2025-01")
    assert log.confirm(ref(again), "192.0.2.4") == "NIA@example.org"
    [consent] = log.confirmed()
    assert (consent.subscriber.email, consent.subscriber.name, consent.wording) == (
        "NIA@example.org",
        "Nia B",
        "2025-01",
    )


def test_confirming_lifts_a_suppression_and_keeps_the_record(store: Store) -> None:
    suppressions = SuppressionList(store)
    suppressions.add("nia@example.org", "bounced", "2024-05: hard 5.1.1")
    log = SignupLog(store)
    pending = log.request(NIA, "192.0.2.1", "2024-06")
    assert "Nia@Example.org" in suppressions  # asking changes nothing
    log.confirm(ref(pending), "192.0.2.1")
    assert "Nia@Example.org" not in suppressions
    [removal] = suppressions.removals()
    assert (removal.entry.reason, removal.note) == ("bounced", "signed up again and confirmed")


def test_a_confirmation_and_its_suppression_removal_commit_together(store: Store) -> None:
    suppressions = SuppressionList(store)
    suppressions.add("nia@example.org", "unsubscribed", "web page")
    log = SignupLog(store)
    pending = log.request(NIA, "192.0.2.1", "2024-06")
    refuse_inserts(store, "suppression_removals")
    with pytest.raises(match="refused by the test"):
        log.confirm(ref(pending), "192.0.2.1")
    assert log.confirmed() == [] and log.pending(ref(pending)) == pending
    assert "nia@example.org" in suppressions


def test_the_mail_limits_count_per_address_in_any_case_and_per_ip(store: Store) -> None:
    log = SignupLog(store)

    def may(address: str, ip: str) -> bool:
        return log.may_mail(address, ip, per_address_per_day=2, per_ip_per_hour=3)

    assert may("victim@example.org", "192.0.2.1") and may("VICTIM@example.org", "192.0.2.2")
    assert not may("victim@example.org", "192.0.2.3")  # the address's two for the day
    assert may("other@example.org", "192.0.2.1") and may("third@example.org", "192.0.2.1")
    assert not may("fourth@example.org", "192.0.2.1")  # the IP's three for the hour
    assert len(list(store.iter_signup_mails())) == 4  # refused mails are not counted


def test_the_mail_limits_hold_for_connections_racing_each_other(store: Store) -> None:
    """Eight connections (as eight server processes would hold) ask at once; the limit of three
    is kept, because counting and logging are one exclusive step."""
    connections = [another_connection(store) for _ in range(8)]
    start = threading.Barrier(len(connections))
    answers: list[bool] = []

    def ask(connection: Store) -> None:
        start.wait()
        allowed = SignupLog(connection).may_mail(
            "victim@example.org", "192.0.2.1", per_address_per_day=3, per_ip_per_hour=100
        )
        answers.append(allowed)

    threads = [threading.Thread(target=ask, args=(c,)) for c in connections]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for connection in connections:
            connection.close()
    assert sorted(answers) == [False] * 5 + [True] * 3


def test_the_mail_log_forgets_entries_older_than_a_week(store: Store) -> None:
    store.add_signup_mail(SignupMail("old@example.org", "192.0.2.1", time.time() - 8 * 86400))
    SignupLog(store).may_mail("new@example.org", "192.0.2.1", per_address_per_day=1, per_ip_per_hour=1)
    assert [m.address for m in store.iter_signup_mails()] == ["new@example.org"]


def test_unconfirmed_requests_expire(store: Store) -> None:
    log = SignupLog(store)
    old = store.add_signup_request(SignupRequest(0, "old@example.org", "", "", time.time() - 3 * 86400, "", ""))
    fresh = log.request(NIA, "192.0.2.1", "2024-06")
    assert log.expire(time.time() - 2 * 86400) == 1
    assert store.get_signup_request(old) is None and log.pending(ref(fresh)) == fresh


def test_a_kept_number_that_is_taken_stores_nothing(store: Store) -> None:
    taken = SignupLog(store).request(NIA, "192.0.2.1", "2024-06")
    other = SignupRequest(taken.id, "someone@example.org", "", "", taken.requested - 100, "", "")
    assert store.add_signup_request(other) == 0
    assert store.add_signup_request(SignupRequest(taken.id + 10, "someone@example.org", "", "", 1.0, "", "")) == (
        taken.id + 10
    )
    later = SignupLog(store).request(Subscriber("later@example.org"), "192.0.2.1", "2024-06")
    assert later.id > taken.id + 10  # numbers handed out later start above every number kept


def test_hostile_values_are_stored_as_given(store: Store) -> None:
    hostile = 'Robert\'); DROP TABLE signups; -- "ünïcode" %s ? $1 \\'
    log = SignupLog(store)
    pending = log.request(Subscriber("bobby@example.org", hostile, (("home_town", hostile),)), hostile, hostile)
    log.confirm(ref(pending), hostile)
    [consent] = log.confirmed()
    assert consent.subscriber.name == hostile and consent.subscriber.fields == (("home_town", hostile),)
    assert consent.request_ip == consent.confirm_ip == consent.wording == hostile
    assert json.loads(next(iter(store.iter_signups())).fields) == [["home_town", hostile]]


def frozen_clock(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    """Every signup step in the same second, as a quick attacker's and a victim's can be."""
    monkeypatch.setattr(signup_log, "time", SimpleNamespace(time=lambda: at))


def test_a_used_link_never_confirms_the_next_request_made_in_the_same_second(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 20: the attacker confirms their own (newest) request, the victim's request comes in
    # the same second; the number may not be handed out again, and the old link names its own
    # request only (its nonce and address are under the MAC).
    frozen_clock(monkeypatch, 1_700_000_000.0)
    log = SignupLog(store)
    mine = log.request(Subscriber("mallory@example.net"), "203.0.113.6", "2024-06")
    assert log.confirm(mine.ref, "203.0.113.6") == "mallory@example.net"
    victim = log.request(Subscriber("victim@example.org"), "192.0.2.1", "2024-06")
    assert victim.id != mine.id and victim.nonce != mine.nonce
    assert log.confirm(mine.ref, "203.0.113.6") is None and log.pending(mine.ref) is None
    # Even a link that names the victim's number with the attacker's nonce and address fails.
    stolen = replace(mine.ref, id=victim.id)
    assert log.confirm(stolen, "203.0.113.6") is None
    assert log.confirm(replace(victim.ref, address="mallory@example.net"), "203.0.113.6") is None
    assert [c.subscriber.email for c in log.confirmed()] == ["mallory@example.net"]
    assert log.confirm(victim.ref, "192.0.2.1") == "victim@example.org"


def test_a_link_from_before_nonces_confirms_only_a_request_from_before_them(store: Store) -> None:
    old = store.add_signup_request(SignupRequest(0, "early@example.org", "", "", 1_700_000_000.0, "", "v1"))
    log = SignupLog(store)
    new = log.request(Subscriber("late@example.org"), "192.0.2.1", "v1")
    assert log.confirm(RequestRef(new.id, int(new.requested)), "192.0.2.1") is None  # the nonce is missing
    assert log.confirm(RequestRef(old, 1_700_000_000), "192.0.2.1") == "early@example.org"


# Steps: ("ask", who) makes a request for person ``who``; ("use", n) uses the n-th link handed out.
_STEPS = st.lists(
    st.one_of(st.tuples(st.just("ask"), st.integers(0, 3)), st.tuples(st.just("use"), st.integers(0, 20))),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS, second=st.integers(1_600_000_000, 1_900_000_000))
def test_over_any_interleaving_a_link_confirms_its_own_person_or_nobody(
    store: Store, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, int]], second: int
) -> None:
    frozen_clock(monkeypatch, float(second))  # every request in one second: the worst case
    log = SignupLog(store)
    tag = f"{second}-{time.monotonic_ns()}"  # this example's people, apart from earlier examples'
    links: list[PendingSignup] = []
    numbers = {request.id for request in store.iter_signup_requests()}
    for kind, n in steps:
        if kind == "ask":
            pending = log.request(Subscriber(f"person{n}-{tag}@example.org"), "192.0.2.1", "v1")
            assert pending.id not in numbers  # a number is never handed out twice
            numbers.add(pending.id)
            links.append(pending)
        elif links:
            link = links[n % len(links)]
            assert log.confirm(link.ref, "192.0.2.9") in (None, link.address)
    for consent in log.confirmed():
        if tag in consent.subscriber.email:
            assert any(link.address == consent.subscriber.email for link in links)
