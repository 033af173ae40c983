"""Dispatch rate against Postfix's smtp-sink, beside Postfix's smtp-source as the reference
client at the same number of connections, in the same run; unsigned, and with --dkim also
DKIM-signed (RSA-2048), each with the CPU time per message of its process next to smtp-source's,
and of its event loop's thread (the store's and the signatures' threads run beside it: on a
machine with a core to spare the loop's figure bounds the rate; here the second core is shared
with smtp-sink).

    python benchmarks/throughput.py --large --concurrency 10 --subscribers 10000 --dkim
    python benchmarks/throughput.py --delay 1 --subscribers 2000 --concurrency 50
    python benchmarks/throughput.py --delay 1 --subscribers 400 --concurrency 10 --workers 2 \
        --store postgresql://bench@127.0.0.1:5432/bench
    python benchmarks/throughput.py --large --concurrency 10 --subscribers 3000 --store temporary \
        --latency 0,5,20

With --latency the PostgreSQL store is reached through latency_proxy.py, delaying each chunk by
each given number of ms each way (0: directly), one send per figure, each rate beside the direct
one (targets: 10 ms round trip at least 0.8 of it, 40 ms at least 0.5). ``--store temporary``
starts a PostgreSQL cluster of its own for the run.

The journal is on (SQLite in the workspace, or the PostgreSQL store given with --store, its
password in NEWSLETTER_STORE_PASSWORD), as in a real send. With --workers N each send runs N
sender processes, and the unsigned send also runs with one, for the ratio between them; CPU per
message then counts the worker processes too. Targets (10 connections, an 88 KB message, the large
issue's size when they were set: `--sections 33`): unsigned at least 0.6 of smtp-source's rate,
signed at least 0.45; at least 0.9 when the sink delays its replies; two workers at least 1.8
times one against a delaying sink. `--large` sends 53 KB since issue 21 made the message
smaller: smtp-source, a byte pump, is half as fast again on it while our cost is mostly per
message, so its ratios are lower and not comparable with those targets.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from common import LARGE_SECTIONS, REPO, make_workspace, smtp_sink, smtp_source_run, temporary_postgres
from latency_proxy import proxy_process

from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.config import load_settings
from newsletter_mailer.send.engine import NoProgress
from newsletter_mailer.send.pool import run_workers


def cpu_seconds() -> float:
    """User + system CPU of this process and of its ended worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def send(root: Path, issue: str, subscribers: int, workers: int) -> tuple[float, float, float, int]:
    """One whole send of an issue of the workspace: (seconds, CPU seconds, the event loop's CPU
    seconds, message size). Each send has its own issue file, so sends that share a PostgreSQL
    store do not share a journal. The loop's CPU (this thread's) is what bounds the rate when
    other cores are free: the store's and the signatures' threads run beside it."""
    settings = load_settings(workspace=root)
    path = root / f"{issue}.md"
    path.write_text((root / "issue.md").read_text())
    with open_campaign(path, settings) as campaign:
        size = len(campaign.template().envelope(Subscriber("member0@example.org", "Member 0")).data)
        cpu, loop, started = cpu_seconds(), time.thread_time(), time.perf_counter()
        summary = run_workers(campaign, workers, NoProgress())
        elapsed, cpu, loop = time.perf_counter() - started, cpu_seconds() - cpu, time.thread_time() - loop
    assert summary.sent == subscribers, summary
    return elapsed, cpu, loop, size


def use_store(root: Path, url: str) -> None:
    """Point a workspace at the PostgreSQL store (its schema brought up to date first)."""
    from newsletter_mailer.store.factory import open_url

    store = open_url(url, os.environ.get("NEWSLETTER_STORE_PASSWORD", ""), check=False)
    try:
        store.migrate()
    finally:
        store.close()
    text = (root / "newsletter.toml").read_text()
    (root / "newsletter.toml").write_text(f'[store]\nurl = "{url}"\n\n{text}')


def main() -> None:
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=int, default=0, help="smtp-sink -w: seconds before answering DATA")
    parser.add_argument("--large", action="store_true", help="the large issue (about 53 KB per message)")
    parser.add_argument(
        "--sections", type=int, default=0, help="this many sections added to the example (--large: 13; 33 make 88 KB)"
    )
    parser.add_argument("--dkim", action="store_true", help="also send DKIM-signed (RSA-2048)")
    parser.add_argument("--workers", type=int, default=1, help="sender processes per send")
    parser.add_argument("--store", default="", metavar="URL", help="a postgresql:// store instead of SQLite")
    parser.add_argument("--latency", default="", metavar="MS,...", help="the store behind these delays each way")
    parser.add_argument("--repeat", type=int, default=1, help="with --latency: rounds of the delays")
    args = parser.parse_args()
    if args.store == "temporary":
        with temporary_postgres() as url:
            args.store = url
            run(args)
        return
    run(args)


def through_proxy(url: str, port: int) -> str:
    """The store URL with its host and port replaced by the proxy's."""
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    user, at, _ = authority.rpartition("@")
    return f"{scheme}://{user}{at}127.0.0.1:{port}{slash}{tail}"


def latency_runs(args: argparse.Namespace) -> None:
    """One send per delay through the latency proxy, each rate beside the direct one (the round
    of delays ``--repeat`` times, each round's ratios to its own direct rate)."""
    delays = [float(d) for d in args.latency.split(",")]
    authority = args.store.partition("://")[2].partition("/")[0].rpartition("@")[2]
    host, _, port = authority.rpartition(":")
    rounds: list[list[tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, smtp_sink(args.delay) as sink:
        ws = {"port": sink, "concurrency": args.concurrency, "extra_sections": LARGE_SECTIONS if args.large else 2}
        for turn in range(args.repeat):
            rates: list[tuple[float, float, float]] = []
            for delay in delays:
                root = make_workspace(Path(tmp) / f"r{turn}d{delay:g}", args.subscribers, **ws)
                if args.large:  # the large issue of the tests, as issue 19 measures it
                    (root / "issue.md").write_text((REPO / "tests" / "fixtures" / "large-issue.md").read_text())
                with proxy_process(host, int(port or 5432), delay) as proxy:
                    use_store(root, through_proxy(args.store, proxy.port) if delay else args.store)
                    issue = f"run{os.getpid()}x{int(time.time())}r{turn}d{delay:g}"
                    elapsed, _, _, size = send(root, issue, args.subscribers, 1)
                rates.append((delay, args.subscribers / elapsed, proxy.trips / args.subscribers))
            rounds.append(rates)
    print(f"messages: {args.subscribers} of {size / 1024:.1f} KB, {args.concurrency} connections, PostgreSQL store")
    for rates in rounds:
        for delay, rate, per_message in rates:
            trip = f"store {delay:g} ms each way ({2 * delay:g} ms round trip):"
            sent = f", {per_message:.3f} round trips to the store per message" if delay else ""
            print(f"{trip:40} {rate:6.0f} msg/s, {rate / rates[0][1]:.2f} of direct{sent}")


def run(args: argparse.Namespace) -> None:
    if args.latency:
        latency_runs(args)
        return
    sections = args.sections or (LARGE_SECTIONS if args.large else 2)
    rows: list[tuple[str, float, float, float]] = []
    n = args.subscribers
    with tempfile.TemporaryDirectory() as tmp, smtp_sink(args.delay) as port:
        ws = {"port": port, "concurrency": args.concurrency, "extra_sections": sections}
        run = f"run{os.getpid()}x{int(time.time())}"  # issue names no earlier run used in the store
        plain = make_workspace(Path(tmp) / "plain", args.subscribers, **ws)
        if args.store:
            use_store(plain, args.store)
        by = f", {args.workers} workers" if args.workers > 1 else ""
        if args.workers > 1:
            elapsed, cpu, loop, size = send(plain, f"{run}-one", args.subscribers, 1)
            rows.append(("newsletter send, 1 worker", elapsed, cpu, loop))
        elapsed, cpu, loop, size = send(plain, f"{run}-plain", args.subscribers, args.workers)
        rows.append((f"newsletter send{by}", elapsed, cpu, loop))
        if args.dkim:
            signed = make_workspace(Path(tmp) / "signed", args.subscribers, **ws)
            if args.store:
                use_store(signed, args.store)
            write_key(generate_key("bench", "example.org"), signed / "dkim.pem")
            with (signed / "newsletter.toml").open("a") as handle:
                handle.write('\n[dkim]\ndomain = "example.org"\nselector = "bench"\nkey_file = "dkim.pem"\n')
            elapsed, cpu, loop, _ = send(signed, f"{run}-signed", args.subscribers, args.workers)
            rows.append((f"newsletter send, DKIM{by}", elapsed, cpu, loop))
        # smtp-source twice, averaged: the machine is shared and its load drifts.
        sessions = args.concurrency * args.workers  # as many connections as the widest send
        first = smtp_source_run(port, sessions, n, size)
        last = smtp_source_run(port, sessions, n, size)
        reference, reference_cpu = (first[0] + last[0]) / 2, (first[1] + last[1]) / 2
    store = "PostgreSQL" if args.store else "SQLite"
    print(
        f"messages: {n} of {size / 1024:.1f} KB, {args.concurrency} connections per worker (smtp-source: "
        f"{args.concurrency * args.workers}), sink delay {args.delay}s, journal on ({store})"
    )
    print(
        f"{'smtp-source':34} {reference:6.1f}s = {n / reference:6.0f} msg/s, CPU {reference_cpu / n * 1e3:.3f} ms/msg"
    )
    for label, elapsed, cpu, loop in rows:
        rate = f"{elapsed:6.1f}s = {n / elapsed:6.0f} msg/s, CPU {cpu / n * 1e3:.3f} ms/msg"
        print(f"{label:34} {rate} (event loop {loop / n * 1e3:.3f}): {reference / elapsed:.2f} of smtp-source")
    if args.workers > 1:
        print(f"{args.workers} workers / 1 worker: {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
