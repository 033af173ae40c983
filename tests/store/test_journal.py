"""The journal's rules, on every store: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import time

import pytest

from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.journal import Delivery, fields_of


def pending(store: Store, issue: str) -> list[Delivery]:
    """The issue's pending rows in list order, as the journal holds them."""
    rows = (r for r in store.journal_rows() if r.issue == issue and r.state == "pending")
    return [Delivery(r.id, r.address, r.name, fields_of(r.fields), r.attempts, r.last_reply, r.resent) for r in rows]


def claim(store: Store, issue: str = "i1", worker: str = "w1") -> Delivery | None:
    """The next row, as a sender's connection claims it (None: nothing claimable)."""
    claimed = store.claim_batch(issue, worker, 1, lease=60)
    return claimed.deliveries[0] if claimed.deliveries else None


def people(*names: str) -> list[Subscriber]:
    return [Subscriber(email=f"{n}@example.org", name=n.title(), fields=(("city", "Rivertön"),)) for n in names]


def test_the_list_as_it_is_now_is_the_truth(store: Store) -> None:
    assert store.add_recipients("i1", people("ann", "bob", "cy")) == 3
    assert store.add_recipients("i1", people("ann", "cy", "dee")) == 1  # bob left, dee came
    assert store.state_of("i1", "bob@example.org") == "removed"
    assert [d.address for d in pending(store, "i1")] == ["ann@example.org", "cy@example.org", "dee@example.org"]
    store.add_recipients("i1", people("ann", "bob"))  # bob is back, cy and dee left
    assert [d.address for d in pending(store, "i1")] == ["ann@example.org", "bob@example.org"]
    first = pending(store, "i1")[0]
    assert first.name == "Ann" and first.fields == (("city", "Rivertön"),)
    assert store.counts("i2")["pending"] == 0  # issues are apart


def test_issues_sent_names_each_issue_with_a_sent_row_and_its_first_send(store: Store) -> None:
    store.add_recipients("draft", people("ann"))
    store.add_recipients("i1", people("ann", "bob"))
    assert store.issues_sent() == {}
    before = time.time()
    first = claim(store)
    assert first is not None
    store.mark_sent(first, "<m1@example.org>", "250 ok")
    second = claim(store)
    assert second is not None
    store.mark_failed(second, "550 no")
    sent = store.issues_sent()
    assert list(sent) == ["i1"] and before - 1 <= sent["i1"] <= time.time() + 1
    third = claim(store, issue="draft")
    assert third is not None
    store.mark_failed(third, "550 no")
    assert list(store.issues_sent()) == ["i1"]  # a send that reached nobody is not a sent issue


def test_claim_mark_and_count(store: Store) -> None:
    store.add_recipients("i1", people("ann", "bob", "cy", "dee"))
    ann = claim(store)
    assert ann is not None and ann.address == "ann@example.org"
    store.mark_sent(ann, "<m1@example.org>", "250 ok")
    bob = claim(store)
    assert bob is not None and bob.address == "bob@example.org"  # a claimed row is not claimed again
    store.mark_failed(bob, "550 no such user")
    cy = claim(store)
    assert cy is not None and cy.first_try > 0
    store.mark_deferred(cy, "451 later", uncertain=True, not_before=time.time() + 60)
    dee = claim(store)
    assert dee is not None and dee.address == "dee@example.org"  # cy waits out its backoff
    store.release(dee)
    counts = store.counts("i1")
    assert (counts["sent"], counts["failed"], counts["pending"], counts["resent"]) == (1, 1, 2, 1)
    assert store.failures("i1") == [("bob@example.org", 1, "550 no such user")]
    assert [(d.address, d.attempts, d.resent) for d in pending(store, "i1")] == [
        ("cy@example.org", 1, True),
        ("dee@example.org", 0, False),  # released: as if never claimed
    ]
    assert store.retry_failed("i1") == 1 and store.state_of("i1", "bob@example.org") == "pending"
    again = claim(store)
    assert again is not None and again.address == "bob@example.org" and again.attempts == 1
    dee_again = claim(store)
    assert dee_again is not None and dee_again.address == "dee@example.org"
    assert claim(store, worker="w2") is None  # cy is still backing off


def test_a_deferred_row_is_claimed_again_once_its_backoff_is_over(store: Store) -> None:
    store.add_recipients("i1", people("ann"))
    ann = claim(store)
    assert ann is not None
    store.mark_deferred(ann, "451 later", uncertain=False, not_before=time.time() + 2.0)
    assert claim(store, worker="w2") is None
    outlook = store.outlook("i1")
    assert outlook.left == 1 and 0 < outlook.wake_in <= 2.0  # the calls may take a while
    time.sleep(max(outlook.wake_in, 0) + 0.05)
    again = claim(store, worker="w2")
    assert again is not None and again.attempts == 1 and again.first_try == ann.first_try and not again.resent


def test_a_suppressed_address_is_not_claimed_whatever_its_case(store: Store) -> None:
    store.add_recipients("i1", people("ann", "bob"))
    SuppressionList(store).add("BOB@Example.org", "unsubscribed", "web")
    assert store.pending_suppressed("i1") == 1
    claimed = store.claim_batch("i1", "w1", 5, lease=60)
    assert [d.address for d in claimed.deliveries] == ["ann@example.org"] and claimed.suppressed == 1
    assert store.state_of("i1", "bob@example.org") == "suppressed"


def test_rows_in_flight_at_a_crash_are_resent_and_flagged(store: Store) -> None:
    store.add_recipients("i1", people("ann", "bob", "cy"))
    _, bob, cy = store.claim_batch("i1", "gone", 3, lease=60).deliveries
    store.mark_sent(bob, "<m@example.org>", "250 ok")
    assert store.in_flight_workers("i1") == ["gone"]
    assert store.recover_in_flight("i1") == 0  # a live lease: another worker may be sending them
    store.mark_sent(cy, "<m2@example.org>", "250 ok")
    assert store.expire_workers("i1", ["gone"]) == 1  # the run that starts knows "gone" has died
    assert store.recover_in_flight("i1") == 1
    (again,) = pending(store, "i1")
    assert again.address == "ann@example.org" and again.resent
    assert again.last_reply == "in flight when an earlier run stopped"
    assert store.counts("i1")["resent"] == 1


def test_journal_rows_copy_between_stores_and_keep_what_is_there(store: Store, tmp_path: object) -> None:
    from pathlib import Path

    from newsletter_mailer.store.sqlite import SQLiteStore

    store.add_recipients("i1", people("ann", "bob"))
    ann = claim(store)
    assert ann is not None
    store.mark_sent(ann, "<m@example.org>", "250 ok")
    other = SQLiteStore.open(Path(str(tmp_path)) / "other" / "newsletter.db")
    try:
        assert other.import_journal_rows(store.journal_rows()) == (2, 0, 0)
        assert other.import_journal_rows(store.journal_rows()) == (0, 2, 0)
        assert other.state_of("i1", "ann@example.org") == "sent"
        assert [d.address for d in pending(other, "i1")] == ["bob@example.org"]
        assert list(other.journal_rows()) == list(store.journal_rows())
    finally:
        other.close()


def test_a_copied_row_keeps_its_number_where_the_target_has_it_free(store: Store, tmp_path: object) -> None:
    """A VERP sender names its journal row by number: after `store copy` the number must still
    name that recipient, wherever the target allows."""
    from pathlib import Path

    from newsletter_mailer.store.sqlite import SQLiteStore

    with SQLiteStore.open(Path(str(tmp_path)) / "source" / "newsletter.db") as source:
        source.add_recipients("i1", people("ann", "bob", "cy"))
        numbers = {row.address: row.id for row in source.journal_rows()}
        store.add_recipients("i0", people("dan"))  # the target's first row has ann's number
        assert store.import_journal_rows(source.journal_rows()) == (3, 0, 1)
        assert store.import_journal_rows(source.journal_rows()) == (0, 3, 0)
    copied = {row.address: row.id for row in store.journal_rows() if row.issue == "i1"}
    assert (
        copied["bob@example.org"] == numbers["bob@example.org"]
        and copied["cy@example.org"] == numbers["cy@example.org"]
    )
    assert copied["ann@example.org"] > max(numbers.values())
    store.add_recipients("i2", people("eve"))  # numbers handed out later start above every number kept
    (eve,) = pending(store, "i2")
    assert eve.id > max(copied.values())
    assert [d.address for d in pending(store, "i1")] == ["bob@example.org", "cy@example.org", "ann@example.org"]


def test_rows_a_where_leaves_out_are_held_not_removed_and_come_back(store: Store) -> None:
    store.add_recipients("i1", people("ann", "bob", "cy"))
    assert store.hold("i1", ["BOB@example.org", "cy@example.org", "nobody@example.org"]) == 2
    assert store.state_of("i1", "bob@example.org") == "held"
    counts = store.counts("i1")
    assert (counts["pending"], counts["held"], counts["removed"]) == (1, 2, 0)
    delivery = claim(store)
    assert delivery is not None and delivery.address == "ann@example.org"
    assert claim(store) is None  # a held row is never claimed
    store.mark_sent(delivery, "<m@x>", "250 ok")
    assert store.hold("i1", ["ann@example.org"]) == 0  # a sent row stays sent
    store.add_recipients("i1", people("ann", "bob"))  # the next run: bob pending again, cy left the list
    assert (store.state_of("i1", "bob@example.org"), store.state_of("i1", "cy@example.org")) == ("pending", "removed")
    assert store.state_of("i1", "ann@example.org") == "sent"


def test_each_run_is_recorded_with_its_filter(store: Store) -> None:
    store.record_run("i1", 'branch == "North"')
    store.record_run("i1", "")
    store.record_run("i2", "x")
    assert [where for _, where in store.runs("i1")] == ['branch == "North"', ""]
    started = [at for at, _ in store.runs("i1")]
    assert started == sorted(started) and abs(started[-1] - time.time()) < 60


def test_a_sender_clock_ahead_of_the_store_sees_its_retries_as_old_as_they_are(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 20: the first try is stamped on the store's clock; a sender 15 minutes ahead measured
    # it on its own and gave up at once. Both ends of the span are now on one clock.
    store.add_recipients("i1", people("ann"))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 900)
    ann = claim(store)
    assert ann is not None and ann.tried_for() < 5
    store.mark_deferred(ann, "451 later", uncertain=False, not_before=0)
    time.sleep(0.2)
    again = claim(store)
    assert again is not None and again.first_try == ann.first_try and 0.2 <= again.tried_for() < 5
    assert 0.2 <= again.tried_for(real() + 900 + 60) - 60 < 5  # measured from any later moment


def test_a_suppression_keeps_its_note_and_its_removal_keeps_both_notes(store: Store) -> None:
    # Schema 7 (main): a note beside the reason, kept in the record when the address is taken off.
    from newsletter_mailer.store.rows import Suppression

    assert store.add_suppression(Suppression("Gil@example.org", "manual", "cli", 1.0, "asked by phone"))
    assert store.get_suppression("gil@EXAMPLE.org") == Suppression(
        "Gil@example.org", "manual", "cli", 1.0, "asked by phone"
    )
    removed = store.remove_suppression("gil@example.org", "signed up again", 2.0)
    assert removed is not None and removed.note == "asked by phone"
    [record] = list(store.iter_removals())
    assert (record.entry.note, record.note, record.removed) == ("asked by phone", "signed up again", 2.0)
