"""Per-recipient cost of filling in a message, beside the obvious way (a new EmailMessage per
recipient, as the reference), and what DKIM signing adds, in the same run.

    python benchmarks/fill.py [--recipients 20000]

Target: at most 20 us per recipient.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from common import make_workspace

from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import dkim_signer, generate_key, write_key
from newsletter_mailer.compose.envelope import MessageTemplate, fill_preview
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings


def per_item(func: object, items: list[Subscriber], repeats: int = 5) -> float:
    """Median over repeats of the time per item, in microseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            func(item)  # type: ignore[operator]
        times.append((time.perf_counter() - started) / len(items) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", 1)
        settings = load_settings(workspace=root)
        rendered = render_issue(read_issue(root / "issue.md"), settings)
        signer = signer_for(settings)
        template = MessageTemplate(rendered, settings, signer)
        people = [
            Subscriber(f"member{i}@example.org", f"Member {i}", (("branch", f"B{i % 7}"),))
            for i in range(args.recipients)
        ]
        size = len(template.envelope(people[0]).data)

        def naive(subscriber: Subscriber) -> bytes:
            html, text = fill_preview(rendered, settings, signer, subscriber)
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = settings.newsletter.from_, subscriber.email, "S"
            message["List-Unsubscribe"] = f"<{signer.unsubscribe_url(settings.newsletter.base_url, subscriber.email)}>"
            message.set_content(text, cte="quoted-printable")
            message.add_alternative(html, subtype="html", cte="quoted-printable")
            return message.as_bytes()

        ours = per_item(template.envelope, people)
        reference = per_item(naive, people[:500], repeats=3)
        write_key(generate_key("bench", "example.org"), root / "dkim.pem")
        with (root / "newsletter.toml").open("a") as handle:
            handle.write('\n[dkim]\ndomain = "example.org"\nselector = "bench"\nkey_file = "dkim.pem"\n')
        signed_settings = load_settings(workspace=root)
        signed = MessageTemplate(rendered, signed_settings, signer, dkim=dkim_signer(signed_settings))
        with_dkim = per_item(signed.envelope, people[:1000], repeats=3)
    print(f"message: {size / 1024:.1f} KB; {args.recipients} recipients")
    print(f"fill per recipient:            {ours:8.1f} us (target <= 20 us)")
    print(f"new EmailMessage per recipient: {reference:8.1f} us (reference, {reference / ours:.0f}x slower)")
    print(f"fill + DKIM (RSA-2048):        {with_dkim:8.1f} us (DKIM adds {with_dkim - ours:.0f} us per message)")


if __name__ == "__main__":
    main()
