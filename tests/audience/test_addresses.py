"""The list reader's address check (audience/addresses.py) against email-validator, its reference:
every address gets the library's answer (the same normalised form, or the same refusal with the
same reason), on a corpus of normal and hostile addresses and on generated ones, whether its
domain was seen before or not."""

from __future__ import annotations

import itertools

import email_validator.rfc_constants as rfc
import pytest
from email_validator import EmailNotValidError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter_mailer.audience.addresses import Normaliser, reference_address
from newsletter_mailer.audience.subscribers import normalise_address

LOCALS = [
    "ada",
    "Ada.Lovelace",
    "a",
    "x" * 64,
    "x" * 65,
    "x" * 200,
    "first.last+tag",
    "o'brien",
    "a_b-c",
    "#!$%&'*+-/=?^_`{|}~",
    "a..b",
    ".a",
    "a.",
    "",
    " ada",
    "ada ",
    "a b",
    '"a b"',
    '"ada"',
    '"a\\"b"',
    '"a@b"',
    "a@b",
    "(comment)ada",
    "ada(comment)",
    "<ada>",
    "ada,bob",
    "ada;bob",
    "ada\\b",
    "a\x00b",
    "a\nb",
    "a\tb",
    "a\rb",
    "a\x7fb",
    "ünïcode",
    "Ünïcode",
    "用户",
    "e\u0301",
    "\u0301e",
    "a\u200bb",
    "a\u202eb",
    "a\ufeffb",
    "a\ud800b",
    "a\u2028b",
    "ａｄａ",
    "Postmaster",
    "postmaster",
    "ABUSE",
    "info",
    "Support",
    "www",
    "ftp",
    "news.letter",
    "postmaster.x",
    "xn--ls8h",
    "🙂",
    "a\u0338",
    "ada>",
]
DOMAINS = [
    "example.org",
    "EXAMPLE.ORG",
    "Example.Org",
    "mail.example.co.uk",
    "example.org.",
    ".example.org",
    "example..org",
    "-example.org",
    "example-.org",
    "ex_ample.org",
    "example",
    "localhost",
    "example.local",
    "example.test",
    "example.invalid",
    "example.onion",
    "example.arpa",
    "1.2.3.4",
    "[1.2.3.4]",
    "[IPv6:::1]",
    "123.org",
    "example.123",
    "a" * 63 + ".org",
    "a" * 64 + ".org",
    ".".join(["abcdefghij"] * 24) + ".org",
    ".".join(["abcdefghij"] * 23) + ".org",
    "münchen.de",
    "MÜNCHEN.DE",
    "xn--mnchen-3ya.de",
    "xn--mnchen.de",
    "xn--.org",
    "bücher.example",
    "例え.jp",
    "Ⅷ.org",
    "ａｄａ.org",
    "exa mple.org",
    "example.org ",
    " example.org",
    "exam\x00ple.org",
    "example.org\n",
    "exa\u200dmple.org",
    "\u0301example.org",
    "e\u0301xample.org",
    "ex@mple.org",
    "@example.org",
    "",
    "example.o",
    "example.org>",
    "xn--ls8h.la",
    "🙂.la",
    "example。org",
    "example．org",
    "٣.org",
    "\u0338example.org",
    "exam\ud800ple.org",
    "a.b.c.d.e.f.g",
    "example.co\u202e",
    "⒈.org",
]
HOSTILE = [
    "",
    "@",
    "@@",
    "a@",
    "@b.org",
    "a@@b.org",
    "a@b@c.org",
    "Ada <ada@example.org>",
    "<ada@example.org>",
    '"Ada" <ada@example.org>',
    "ada＠example.org",
    "ada﹫example.org",
    "ada example.org",
    "ada@example.org,",
    '"a@b"@example.org',
    '"ada"@example.org',
    '"a b"@example.org',
    '""@example.org',
    "a@[1.2.3.4]",
    "ada@example.org" + "\u0338",
    "ada@\u0338example.org",
    "x" * 64 + "@" + "y" * 185 + ".org",
    "x" * 64 + "@" + "y" * 186 + ".org",
    "x" * 200 + "@" + "y" * 49 + ".org",
    "x" * 200 + "@" + "y" * 50 + ".org",
    "x" * 240 + "@münchen.de",
    "x" * 238 + "@münchen.de",
    "x" * 233 + "@münchen.de",
    "x" * 232 + "@münchen.de",
]


# Around the 254-octet limit, with domains whose forms differ in length: as given (full-width
# letters take 3 octets each), normalised (Unicode: twenty 例 are 29 characters of IDNA and 63
# octets of UTF-8) and in ASCII (IDNA): each form is checked.
LONG_DOMAINS = ("ｍｕｎｃｈｅｎ.de", "münchen.de", "例え.jp", "ＥＸＡＭＰＬＥ.org", "xn--mnchen-3ya.de", "Ⅷ.org")
LONG = [
    "x" * size + "@" + domain
    for domain, sizes in [
        *((d, range(220, 250)) for d in LONG_DOMAINS),
        ("xn--fsqaaaaaaaaaaaaaaaaaaa.jp", range(180, 200)),
    ]
    for size in sizes
]


def corpus() -> list[str]:
    return HOSTILE + LONG + [f"{local}@{domain}" for local, domain in itertools.product(LOCALS, DOMAINS)]


def answer(check: object, raw: str) -> tuple[str, str]:
    """("ok", the address) or ("refused", email-validator's reason)."""
    try:
        return "ok", check(raw)  # type: ignore[operator]
    except EmailNotValidError as exc:
        return "refused", str(exc)


def test_every_address_of_the_corpus_gets_the_reference_answer_cold_and_cached() -> None:
    normalise = Normaliser()
    addresses = corpus()
    assert len(addresses) > 3000
    for raw in addresses + addresses:  # the second round finds every domain in the cache
        assert answer(normalise, raw) == answer(reference_address, raw), raw
    # The corpus holds both kinds in number, so neither half of the comparison is empty.
    verdicts = [answer(reference_address, raw)[0] for raw in addresses]
    assert verdicts.count("ok") > 300 and verdicts.count("refused") > 1000


def test_a_refused_domain_in_the_cache_still_gets_each_address_its_own_reason() -> None:
    normalise = Normaliser()
    assert answer(normalise, "ada@example..org")[0] == "refused"
    assert answer(normalise, "a..b@example..org") == answer(reference_address, "a..b@example..org")
    assert "period" in answer(normalise, "ada@example..org")[1]


def test_each_domain_is_checked_once_and_plain_addresses_skip_the_library() -> None:
    normalise = Normaliser()
    addresses = [f"member{i}@{domain}" for i in range(300) for domain in ("example.org", "Example.org", "münchen.de")]
    assert [normalise(a) for a in addresses] == [reference_address(a) for a in addresses]
    assert normalise.domains_checked == 3
    assert normalise.answered_fast == len(addresses)
    assert normalise("member1@münchen.de") == "member1@xn--mnchen-3ya.de"


def test_what_the_fast_path_leaves_to_the_library() -> None:
    """Quoted and non-ASCII local parts and the mailbox names email-validator lower-cases are its
    alone (the right answers are checked above; here, that they do not take the fast path)."""
    normalise = Normaliser()
    for raw in ('"ada"@example.org', "ünïcode@example.org", "Postmaster@example.org", "x" * 250 + "@b.org"):
        answer(normalise, raw)
    assert normalise.answered_fast == 0
    assert normalise("Postmaster@Example.org") == "postmaster@example.org"


def test_the_cache_is_bounded_and_answers_stay_right_when_it_starts_again() -> None:
    normalise = Normaliser(limit=10)
    addresses = [f"ada@d{i}.example.org" for i in range(35)] * 2
    assert [normalise(a) for a in addresses] == [reference_address(a) for a in addresses]
    assert len(normalise._domains) <= 10
    assert normalise.domains_checked == 70  # the cache kept none long enough to be reused here


def test_the_mailbox_names_copy_is_the_library_s_list() -> None:
    from newsletter_mailer.audience import addresses

    assert frozenset(rfc.CASE_INSENSITIVE_MAILBOX_NAMES) == addresses._MAILBOX_NAMES


def test_normalise_address_is_the_reference() -> None:
    assert normalise_address("Ada@Example.ORG") == reference_address("Ada@Example.ORG") == "Ada@example.org"
    with pytest.raises(EmailNotValidError):
        normalise_address("ada@example..org")


_SYMBOLS = ["a", "Z", "0", ".", "-", "_", "+", "@", '"', " ", "\\", "<", ">", "(", ")", "[", "]", ":", ",", ";"]
_UNICODE = ["ü", "ß", "İ", "\u0301", "\u200b", "．", "\x00", "\n", "用", "ａ", "\u202e", "Ⅷ"]
_PIECES = st.sampled_from([*_SYMBOLS, *_UNICODE, "xn--", "example", "org"])


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(local=st.lists(_PIECES, max_size=8).map("".join), domain=st.lists(_PIECES, max_size=10).map("".join))
def test_generated_addresses_get_the_reference_answer(local: str, domain: str) -> None:
    raw = f"{local}@{domain}"
    normalise = Normaliser()
    first = answer(normalise, raw)
    assert first == answer(reference_address, raw)
    assert answer(normalise, f"x.{raw}") == answer(reference_address, f"x.{raw}")  # the domain now cached
    assert answer(normalise, raw) == first
