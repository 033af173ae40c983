"""What durable claims cost: the same send to Postfix's smtp-sink with the PostgreSQL store
(a cluster of its own, fsync on), once as shipped (each claim commits synchronously) and once
with the claim's commit left asynchronous like the outcomes (the old behaviour, which a crash of
the server turned into unflagged duplicates), alternating, each twice.

    python benchmarks/durable_claims.py [--subscribers 3000] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import make_workspace, smtp_sink, temporary_postgres
from throughput import send, use_store

from newsletter_mailer.store import queries
from newsletter_mailer.store.dialect import POSTGRESQL

__all__ = ["main"]


def set_durable(durable: bool) -> None:
    """Ship the claim as it is, or without its ``set_config('synchronous_commit', 'on', true)``."""
    queries.queries_for.cache_clear()
    rendered = queries.queries_for(POSTGRESQL)
    if not durable:
        claim = rendered["claim_batch"].replace("set_config('synchronous_commit', 'on', true)", "''")
        rendered._sql["claim_batch"] = claim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    rates: dict[bool, list[float]] = {True: [], False: []}
    with temporary_postgres() as url, tempfile.TemporaryDirectory() as tmp, smtp_sink() as port:
        for n, durable in enumerate([True, False, True, False]):
            set_durable(durable)
            root = make_workspace(Path(tmp) / f"r{n}", args.subscribers, port=port, concurrency=args.concurrency)
            use_store(root, url)
            elapsed, _, _, _ = send(root, f"claims{os.getpid()}x{int(time.time())}r{n}", args.subscribers, 1)
            rates[durable].append(args.subscribers / elapsed)
    for durable, label in ((False, "claims asynchronous (before)"), (True, "claims durable (now)")):
        print(f"{label:30} " + ", ".join(f"{r:.0f}" for r in rates[durable]) + " msg/s")
    print(f"durable / asynchronous: {sum(rates[True]) / sum(rates[False]):.2f}")


if __name__ == "__main__":
    main()
