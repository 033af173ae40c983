"""Several workers on one send, on every store: batches claimed in list order and never twice,
leases that let another worker take over a dead one's rows, a shared pace, the workers seen."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import PG_PASSWORD
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.store.base import TAKEN_OVER, Store
from newsletter_mailer.store.postgres import PostgresStore
from newsletter_mailer.store.sqlite import SQLiteStore


def load(store: Store, count: int) -> None:
    store.add_recipients("i1", [Subscriber(email=f"u{i:03d}@example.org", name=f"U{i}") for i in range(count)])


def test_batches_come_in_list_order_and_never_twice(store: Store) -> None:
    load(store, 12)
    SuppressionList(store).add("U003@example.org", "unsubscribed")
    first = store.claim_batch("i1", "w1", 5, lease=60)
    second = store.claim_batch("i1", "w2", 5, lease=60)
    assert [d.address for d in first.deliveries] == [f"u{i:03d}@example.org" for i in (0, 1, 2, 4)]
    assert first.suppressed == 1 and store.state_of("i1", "u003@example.org") == "suppressed"
    assert [d.address for d in second.deliveries] == [f"u{i:03d}@example.org" for i in range(5, 10)]
    assert all(d.attempts == 0 and not d.resent for d in first.deliveries + second.deliveries)
    rest = store.claim_batch("i1", "w1", 5, lease=60)
    assert len(rest.deliveries) == 2 and store.claim_batch("i1", "w2", 5, lease=60).deliveries == ()
    assert store.counts("i1")["sending"] == 11


def test_a_dead_workers_rows_are_taken_over_after_its_lease(store: Store) -> None:
    load(store, 4)
    dead = store.claim_batch("i1", "dead", 2, lease=0.3)
    alive = store.claim_batch("i1", "alive", 2, lease=0.3)
    store.mark_sent(dead.deliveries[0], "<m@example.org>", "250 ok")
    store.heartbeat("i1", "alive", "laptop", 42, sent=0, lease=60)  # alive renews, dead does not
    time.sleep(0.5)
    taken = store.claim_batch("i1", "rescuer", 10, lease=60)
    assert [d.address for d in taken.deliveries] == [dead.deliveries[1].address]
    (row,) = taken.deliveries
    assert row.resent and row.last_reply == TAKEN_OVER and row.attempts == 1
    assert store.counts("i1")["resent"] == 1
    assert alive.deliveries[0].address not in {d.address for d in taken.deliveries}


def test_the_send_records_its_issue_files_hash_once(store: Store) -> None:
    assert store.record_send("i1", "sha256:aaa") == "sha256:aaa"
    assert store.record_send("i1", "sha256:bbb") == "sha256:aaa"  # a joiner compares with this
    assert store.record_send("i2", "sha256:bbb") == "sha256:bbb"


def test_workers_are_listed_with_host_and_rate(store: Store) -> None:
    store.heartbeat("i1", "w1", "laptop", 101, sent=0, lease=60)
    store.heartbeat("i1", "w2", "server", 202, sent=0, lease=60)
    time.sleep(0.3)
    store.heartbeat("i1", "w1", "laptop", 101, sent=30, lease=60)
    w1, w2 = store.workers("i1")
    assert (w1.worker, w1.host, w1.pid, w1.sent, w2.host) == ("w1", "laptop", 101, 30, "server")
    # 30 sent in the 0.3 s slept and the calls around it (up to 3 s on a loaded machine)
    assert 10 < w1.rate < 150 and w2.rate == 0 and w1.last_seen >= w2.last_seen
    assert store.workers("other") == []


def test_the_pace_is_shared(store: Store) -> None:
    waits = [store.pace("relay", 1.0) for _ in range(4)]  # a second apart: the calls may take a while
    assert waits[0] == 0
    for n, wait in enumerate(waits[1:], 1):
        assert 1.0 * n - 0.5 < wait <= 1.0 * n + 0.01


CLAIMER = """
import sys
import time
from pathlib import Path
kind, where, worker = sys.argv[1:4]
if kind == "sqlite":
    from newsletter_mailer.store.sqlite import SQLiteStore
    store = SQLiteStore.open(Path(where))
else:
    from newsletter_mailer.store.postgres import PostgresStore
    store = PostgresStore.open(where, sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
while batch := store.claim_batch("i1", worker, 3, lease=60).deliveries:
    for delivery in batch:
        store.mark_sent(delivery, "<m@x>", "250")
        print(delivery.id, flush=True)
    time.sleep(0.002)  # as a send would take: the other worker always gets a turn, on a loaded machine too
"""


def test_two_processes_claiming_at_once_share_the_list_exactly(store: Store) -> None:
    load(store, 300)
    if isinstance(store, PostgresStore):
        args = ["postgresql", store.url, PG_PASSWORD]
    else:
        assert isinstance(store, SQLiteStore)
        args = ["sqlite", str(store.path)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, args[0], args[1], f"w{n}", *args[2:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:  # start both at once
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    claimed = [[int(line) for line in worker.communicate(timeout=120)[0].split()] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert claimed[0] and claimed[1], "one worker got everything: the test did not overlap"
    assert sorted(claimed[0] + claimed[1]) == sorted({*claimed[0], *claimed[1]})  # never twice
    assert len(claimed[0]) + len(claimed[1]) == 300 and store.counts("i1")["sent"] == 300
