"""Peak memory of `newsletter send --dry-run` as the list grows: every message is built and
none is sent. Each size runs in a fresh process; the list is read as a stream.

    python benchmarks/memory.py [--sizes 100000,300000,1000000]

Target: at most 200 MB at 1,000,000 subscribers, and flat as the list grows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, make_workspace


def peak_mb(root: Path) -> tuple[float, float, str]:
    script = (
        "import resource, sys; from newsletter_mailer.cli import main\n"
        "try:\n    main(['send', 'issue.md', '--dry-run'])\nexcept SystemExit:\n    pass\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "NEWSLETTER_SECRET": "benchmark", "PYTHONPATH": str(REPO / "src")},
    )
    elapsed = time.perf_counter() - started
    peak = next(line for line in result.stderr.splitlines() if line.startswith("PEAK"))
    return int(peak.split()[1]) / 1024, elapsed, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = make_workspace(Path(tmp) / "ws", size)
            mb, seconds, summary = peak_mb(root)
        print(f"{size:>9} subscribers: peak {mb:6.1f} MB in {seconds:6.1f}s  ({summary})")


if __name__ == "__main__":
    main()
