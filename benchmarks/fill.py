"""Per-recipient cost of filling in a message, beside the obvious way (a new EmailMessage per
recipient, as the reference), and what DKIM signing adds next to its physical floor (one
OpenSSL RSA-2048 signature plus one SHA-256 over the message) and next to dkimpy, in the same run.

    python benchmarks/fill.py [--recipients 20000] [--large]
    python benchmarks/fill.py --variants 4   # an issue with a section per branch, beside the same issue without
    python benchmarks/fill.py --languages [--recipients 20000] [--large]

``--languages``: the issue with French and Arabic translations beside it, readers in turn French,
Arabic and none: each language rendered once, and the per-recipient fill through the choice of a
reader's template (compose/translations.py ByLanguage) beside one template alone, in the same run.

Targets: at most 20 us per recipient to fill; DKIM at most 0.5 ms per message (large issue); with
variants, the fill per recipient the same as without (each variant rendered once).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim as dkimpy
from common import LARGE_SECTIONS, make_workspace
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import SIGNED_HEADERS, DkimSigner, dkim_signer, generate_key, parse_key, write_key
from newsletter_mailer.compose.editions import Editions
from newsletter_mailer.compose.envelope import MessageTemplate, fill_preview
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.compose.translations import ByLanguage, rendered_translations
from newsletter_mailer.config import load_settings


def per_item(func: Callable[[Any], object], items: list[Any], repeats: int = 5) -> float:
    """The fastest of the repeats, per item, in microseconds: the least disturbed by a shared machine."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            func(item)
        times.append((time.perf_counter() - started) / len(items) * 1e6)
    return min(times)


def variants_mode(recipients: int, variants: int, large: bool) -> None:
    """The fill per recipient of an issue with a section per branch (``variants`` branches, each
    reader in one), beside today's path: the same issue as one message for everyone (every
    section shown). Measured in alternating rounds, the fastest of each kept: the machine is shared."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", 1, extra_sections=LARGE_SECTIONS if large else 2)
        settings = load_settings(workspace=root)
        with (root / "issue.md").open("a") as handle:
            for k in range(variants):
                handle.write(f'\n## Branch {k} news\n{{only: branch == "B{k}"}}\n\nMeeting of branch {k}.\n')
        started = time.perf_counter()
        segmented = render_issue(read_issue(root / "issue.md"), settings)
        signer = signer_for(settings)
        template = MessageTemplate(segmented, settings, signer)  # every section, one message for all
        editions = Editions(segmented, settings, lambda r: MessageTemplate(r, settings, signer))
        people = [
            Subscriber(f"member{i}@example.org", f"Member {i}", (("branch", f"B{i % variants}"),))
            for i in range(recipients)
        ]
        editions.prepare({editions.variant_of(p) for p in people})
        prepared = time.perf_counter() - started
        rounds = [(per_item(template.envelope, people, 1), per_item(editions.envelope, people, 1)) for _ in range(6)]
        today, ours = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"{recipients} recipients, {variants} variants (one section per branch)")
    print(f"render + encode every variant once:   {prepared * 1000:8.0f} ms in all")
    print(f"fill per recipient, no conditions:    {today:8.1f} us (today's path, reference)")
    print(f"fill per recipient, {variants} variants:        {ours:8.1f} us (ratio {ours / today:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--large", action="store_true", help="the large issue (about 83 KB per message)")
    parser.add_argument("--variants", type=int, default=0, help="an issue with a section for each of N branches")
    parser.add_argument("--languages", action="store_true", help="three languages: render once each, fill per reader")
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET", "benchmark")
    if args.languages:
        three_languages(args.recipients, args.large)
        return
    if args.variants:
        variants_mode(args.recipients, args.variants, args.large)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", 1, extra_sections=LARGE_SECTIONS if args.large else 2)
        settings = load_settings(workspace=root)
        rendered = render_issue(read_issue(root / "issue.md"), settings)
        signer = signer_for(settings)
        template = MessageTemplate(rendered, settings, signer)
        people = [
            Subscriber(f"member{i}@example.org", f"Member {i}", (("branch", f"B{i % 7}"),))
            for i in range(args.recipients)
        ]
        message = template.envelope(people[0]).data

        def naive(subscriber: Subscriber) -> bytes:
            html, text = fill_preview(rendered, settings, signer, subscriber)
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = settings.newsletter.from_, subscriber.email, "S"
            mail["List-Unsubscribe"] = f"<{signer.unsubscribe_url(settings.newsletter.base_url, subscriber.email)}>"
            mail.set_content(text, cte="quoted-printable")
            mail.add_alternative(html, subtype="html", cte="quoted-printable")
            return mail.as_bytes()

        ours = per_item(template.envelope, people)
        addresses = [p.email for p in people]
        token = per_item(signer.token, addresses)
        reference = per_item(naive, people[:500], repeats=3)
        pair = generate_key("bench", "example.org")
        write_key(pair, root / "dkim.pem")
        with (root / "newsletter.toml").open("a") as handle:
            handle.write('\n[dkim]\ndomain = "example.org"\nselector = "bench"\nkey_file = "dkim.pem"\n')
        signed_settings = load_settings(workspace=root)
        rsa_signer = dkim_signer(signed_settings)
        assert rsa_signer is not None
        signed = MessageTemplate(rendered, signed_settings, signer, dkim=rsa_signer)
        with_dkim = per_item(signed.envelope, people[:5000], repeats=5)
        ed_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        both = DkimSigner([*rsa_signer.keys, parse_key(ed_pem, "ed", "example.org")])
        with_both = per_item(MessageTemplate(rendered, signed_settings, signer, dkim=both).envelope, people[:5000])
        whole = per_item(rsa_signer.sign, [message] * 300, repeats=3)
        key = rsa_signer.keys[0].key
        assert isinstance(key, rsa.RSAPrivateKey)

        def floor(data: bytes) -> bytes:
            digest = hashlib.sha256(data).digest()
            return key.sign(hashlib.sha256(digest).digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

        physical = per_item(floor, [message] * 2000)
        sha_only = per_item(lambda data: hashlib.sha256(data).digest(), [message] * 2000)

        def with_dkimpy(data: bytes) -> bytes:
            relaxed = (b"relaxed", b"relaxed")
            headers = list(SIGNED_HEADERS)
            signature: bytes = dkimpy.sign(data, b"bench", b"example.org", pair.private_pem, canonicalize=relaxed,
                                           include_headers=headers)  # fmt: skip
            return signature

        dkimpy_cost = per_item(with_dkimpy, [message] * 30, repeats=3)
    dkim = with_dkim - ours
    print(f"message: {len(message) / 1024:.1f} KB; {args.recipients} recipients")
    print(f"fill per recipient:             {ours:8.1f} us (target <= 20 us)")
    print(f"  of which the unsubscribe token: {token:6.1f} us (AES-SIV, one per recipient)")
    print(f"new EmailMessage per recipient: {reference:8.1f} us (reference, {reference / ours:.0f}x slower)")
    print(f"DKIM RSA-2048 per message:      {dkim:8.1f} us (target <= 500 us); fill + DKIM {with_dkim:.1f} us")
    print(f"  physical floor:               {physical:8.1f} us (one OpenSSL signature + SHA-256 of the message;")
    print(f"                                          SHA-256 alone {sha_only:.1f} us); ratio {dkim / physical:.2f}")
    print(f"  + Ed25519 second signature:   {with_both - with_dkim:8.1f} us")
    print(f"  whole message, no template:   {whole:8.1f} us (our signer canonicalising the whole body)")
    print(f"  dkimpy (with its own RSA):    {dkimpy_cost:8.1f} us")


def three_languages(recipients: int, large: bool) -> None:
    """Per-recipient fill with three languages against one, and what rendering each costs."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", 1, extra_sections=LARGE_SECTIONS if large else 2)
        for language in ("fr", "ar"):
            (root / f"issue.{language}.md").write_text((root / "issue.md").read_text(encoding="utf-8"))
        settings = load_settings(workspace=root)
        issue = read_issue(root / "issue.md")
        started = time.perf_counter()
        rendered = render_issue(issue, settings)
        one_render = time.perf_counter() - started
        signer = signer_for(settings)
        single = MessageTemplate(rendered, settings, signer)
        started = time.perf_counter()
        others = rendered_translations(issue, settings)
        chooser = ByLanguage(single, {k: MessageTemplate(r, settings, signer) for k, r in others.items()})
        two_more = time.perf_counter() - started
        cells = ("fr", "ar-EG", "")
        people = [
            Subscriber(f"member{i}@example.org", f"Member {i}", (("language", cells[i % 3]),))
            for i in range(recipients)
        ]
        alone = per_item(single.envelope, people)
        chosen = per_item(chooser.envelope, people)
        alone_again = per_item(single.envelope, people)
    base = min(alone, alone_again)
    print(f"{recipients} recipients, a third each French, Arabic, none (the main file)")
    print(f"render + encode, main language:        {one_render * 1e3:8.1f} ms (once)")
    print(f"render + encode, two translations:     {two_more * 1e3:8.1f} ms (once each, not per recipient)")
    print(f"fill per recipient, one template:      {base:8.1f} us")
    print(f"fill per recipient, chosen by language: {chosen:7.1f} us (ratio {chosen / base:.2f})")


if __name__ == "__main__":
    main()
