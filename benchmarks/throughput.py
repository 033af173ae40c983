"""Dispatch rate against Postfix's smtp-sink, beside Postfix's smtp-source as the reference
client at the same number of connections, in the same run.

    python benchmarks/throughput.py [--subscribers 20000] [--concurrency 8]
    python benchmarks/throughput.py --delay 1 --subscribers 2000 --concurrency 50

The journal is on (SQLite in the workspace), as in a real send. Targets: at least half of
smtp-source's rate against a fast sink; at least 0.9 of it when the sink delays its replies.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import make_workspace, smtp_sink, smtp_source_seconds

from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.config import load_settings
from newsletter_mailer.send import dispatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=int, default=0, help="smtp-sink -w: seconds before answering DATA")
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    with tempfile.TemporaryDirectory() as tmp, smtp_sink(args.delay) as port:
        root = make_workspace(Path(tmp) / "ws", args.subscribers, port=port, concurrency=args.concurrency)
        settings = load_settings(workspace=root)
        with dispatch.open_campaign(root / "issue.md", settings) as campaign:
            size = len(campaign.template().envelope(Subscriber("member0@example.org", "Member 0")).data)
            started = time.perf_counter()
            summary = campaign.run()
            ours = time.perf_counter() - started
        assert summary.sent == args.subscribers, summary
        reference = smtp_source_seconds(port, args.concurrency, args.subscribers, size)
    ours_rate, ref_rate = args.subscribers / ours, args.subscribers / reference
    print(
        f"messages: {args.subscribers} of {size / 1024:.1f} KB, {args.concurrency} connections, "
        f"sink delay {args.delay}s, journal on"
    )
    print(f"newsletter send: {ours:.1f}s = {ours_rate:.0f} msg/s")
    print(f"smtp-source:     {reference:.1f}s = {ref_rate:.0f} msg/s")
    print(f"ratio: {ours_rate / ref_rate:.2f} of smtp-source")


if __name__ == "__main__":
    main()
