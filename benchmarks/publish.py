"""What the web archive costs: building an archive of N sent issues (the large fixture, each with
two photos), beside rendering the same issues' emails in the same run; a second `publish`,
which must write nothing; and one phone photo (48 megapixels) made into the archive's copy,
with the peak memory (VmHWM: ru_maxrss would keep this process's peak across the exec) of a
fresh process that does only that.

    python benchmarks/publish.py [--issues 24]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings
from newsletter_mailer.publish.archive import Archive, SentIssue
from newsletter_mailer.publish.site import build_site, write_site

__all__: list[str] = []

PHOTO = """
import sys, time
from pathlib import Path
from PIL import Image
from newsletter_mailer.compose.images import media_image
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.publish.media import served_bytes
root = Path(sys.argv[1])
data = (root / "big.jpg").read_bytes()
start = time.perf_counter()
image = media_image("big.jpg", root / "big.jpg", data, read_issue(root / "issue.md"), 1)
served = served_bytes(image)
took = time.perf_counter() - start
status = Path("/proc/self/status").read_text()
peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
print(f"{took:.2f} {int(peak) / 1024:.0f} {len(served)}")
"""


def photo(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    image = Image.radial_gradient("L").resize(size).convert("RGB")
    image.save(path, format="JPEG", quality=90)


def archive_of(root: Path, count: int) -> Archive:
    text = (REPO / "tests" / "fixtures" / "large-issue.md").read_text(encoding="utf-8")
    text = text.replace("\n## ", "\n![Photo one](one.jpg)\n\n![Photo two](two.jpg)\n\n## ", 1)
    photo(root / "issues" / "one.jpg", (3000, 2000))
    photo(root / "issues" / "two.jpg", (1200, 1600))
    sent = []
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
    for n in range(count):
        path = root / "issues" / f"issue-{n:03}.md"
        path.write_text(text.replace("spring 2027", f"number {n}"), encoding="utf-8")
        sent.append(SentIssue(read_issue(path), start + n * 86400 * 30))
    return Archive(tuple(reversed(sent)), ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / "issues").mkdir()
        (root / "newsletter.toml").write_text('[newsletter]\nname = "Bench"\ntimezone = "Europe/London"\n')
        settings = load_settings(workspace=root, env={"NEWSLETTER_SECRET": "bench"})
        archive = archive_of(root, args.issues)
        began = time.perf_counter()
        for sent in archive.issues:
            render_issue(sent.issue, settings)
        emails = time.perf_counter() - began
        began = time.perf_counter()
        files = build_site(settings, archive)
        written = write_site(root / "site", files)
        site = time.perf_counter() - began
        began = time.perf_counter()
        again = write_site(root / "site", build_site(settings, archive))
        second = time.perf_counter() - began
        size = sum(len(data) for data in files.values())
        print(f"{args.issues} issues: {len(files)} files, {size / 1e6:.1f} MB")
        print(f"emails rendered (reference): {emails:.2f} s, {emails / args.issues * 1000:.0f} ms an issue")
        each = site / args.issues * 1000
        print(f"site built and written: {site:.2f} s, {each:.0f} ms an issue; ratio {site / emails:.2f}")
        print(f"second publish: {second:.2f} s, wrote {again[0]} files (first: {written[0]})")
        photo(root / "big.jpg", (8000, 6000))
        (root / "issue.md").write_text("---\nsubject: S\n---\n![big](big.jpg)\n")
        out = subprocess.run(
            [sys.executable, "-c", PHOTO, str(root)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(REPO / "src")},
        ).stdout.split()
        print(f"48-megapixel photo to the archive's copy: {out[0]} s, peak RSS {out[1]} MB, {int(out[2]) / 1e3:.0f} KB")
        print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
