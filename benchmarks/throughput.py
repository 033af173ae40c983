"""Dispatch rate against Postfix's smtp-sink, beside Postfix's smtp-source as the reference
client at the same number of connections, in the same run; unsigned, and with --dkim also
DKIM-signed (RSA-2048), each with the CPU time per message of its process next to smtp-source's.

    python benchmarks/throughput.py --large --concurrency 10 --subscribers 10000 --dkim
    python benchmarks/throughput.py --delay 1 --subscribers 2000 --concurrency 50

The journal is on (SQLite in the workspace), as in a real send. Targets (large issue, 10
connections): unsigned at least 0.6 of smtp-source's rate, signed at least 0.45; at least 0.9
when the sink delays its replies.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from common import LARGE_SECTIONS, make_workspace, smtp_sink, smtp_source_run

from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.config import load_settings
from newsletter_mailer.send import dispatch


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def send(root: Path, subscribers: int) -> tuple[float, float, int]:
    """One whole send of the workspace's issue: (seconds, CPU seconds of this process, message size)."""
    settings = load_settings(workspace=root)
    with dispatch.open_campaign(root / "issue.md", settings) as campaign:
        size = len(campaign.template().envelope(Subscriber("member0@example.org", "Member 0")).data)
        cpu, started = cpu_seconds(), time.perf_counter()
        summary = campaign.run()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert summary.sent == subscribers, summary
    return elapsed, cpu, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=int, default=0, help="smtp-sink -w: seconds before answering DATA")
    parser.add_argument("--large", action="store_true", help="the large issue (about 83 KB per message)")
    parser.add_argument("--dkim", action="store_true", help="also send DKIM-signed (RSA-2048)")
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    sections = LARGE_SECTIONS if args.large else 2
    rows: list[tuple[str, float, float]] = []
    n = args.subscribers
    with tempfile.TemporaryDirectory() as tmp, smtp_sink(args.delay) as port:
        ws = {"port": port, "concurrency": args.concurrency, "extra_sections": sections}
        plain = make_workspace(Path(tmp) / "plain", args.subscribers, **ws)
        elapsed, cpu, size = send(plain, args.subscribers)
        rows.append(("newsletter send", elapsed, cpu))
        if args.dkim:
            signed = make_workspace(Path(tmp) / "signed", args.subscribers, **ws)
            write_key(generate_key("bench", "example.org"), signed / "dkim.pem")
            with (signed / "newsletter.toml").open("a") as handle:
                handle.write('\n[dkim]\ndomain = "example.org"\nselector = "bench"\nkey_file = "dkim.pem"\n')
            elapsed, cpu, _ = send(signed, args.subscribers)
            rows.append(("newsletter send, DKIM", elapsed, cpu))
        # smtp-source twice, averaged: the machine is shared and its load drifts.
        first = smtp_source_run(port, args.concurrency, n, size)
        last = smtp_source_run(port, args.concurrency, n, size)
        reference, reference_cpu = (first[0] + last[0]) / 2, (first[1] + last[1]) / 2
    print(
        f"messages: {n} of {size / 1024:.1f} KB, {args.concurrency} connections, sink delay {args.delay}s, journal on"
    )
    print(
        f"{'smtp-source':24} {reference:6.1f}s = {n / reference:6.0f} msg/s, CPU {reference_cpu / n * 1e3:.3f} ms/msg"
    )
    for label, elapsed, cpu in rows:
        rate = f"{elapsed:6.1f}s = {n / elapsed:6.0f} msg/s, CPU {cpu / n * 1e3:.3f} ms/msg"
        print(f"{label:24} {rate}: {reference / elapsed:.2f} of smtp-source")


if __name__ == "__main__":
    main()
