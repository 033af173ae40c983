"""``newsletter check --dns``: what the sending domains publish in DNS, held against the rules
mailbox providers apply to bulk senders, each gap with the exact record that closes it.

The rules (docs/dns.md): Gmail and Yahoo (February 2024) want SPF and DKIM for bulk senders and a
DMARC record (p=none at least) aligned with one of them; Microsoft (5 May 2025, Outlook.com)
wants SPF to pass, DKIM to pass and DMARC at least p=none aligned with SPF or DKIM, else refuses
with ``550 5.7.515``. Lookups use dnspython with the resolver in ``[deliverability] resolver``
(the system's otherwise). The organisational domain for alignment is an approximation without the
Public Suffix List: the last two labels, three under a two-letter country code's ``co.``, ``com.``...
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..config import Settings, parse_resolver
from ..errors import DnsUnavailable
from .check import Finding
from .dkim import load_key, parse_key

__all__ = [
    "DnsFinding",
    "DnsLookup",
    "aligned",
    "check_dns",
    "organisational",
    "preflight_findings",
    "preflight_wanted",
    "relay_spf_mechanism",
]

Level = Literal["pass", "warn", "fail"]
RULE_SPF = "Microsoft (May 2025): SPF must pass; Gmail, Yahoo: SPF and DKIM for bulk senders"
RULE_DKIM = "Microsoft (May 2025): DKIM must pass; Gmail, Yahoo: DKIM for bulk senders"
RULE_DMARC = "Gmail, Yahoo: DMARC p=none at least for bulk senders; Microsoft: DMARC at least p=none, else 550 5.7.515"
RULE_ALIGN = "DMARC (all three): the From domain aligned with SPF's or DKIM's domain, else 550 5.7.515 at Microsoft"
RULE_BOUNCE = "RFC 5321: delivery reports go to the envelope sender's domain; Gmail, Yahoo: SPF on that domain"
# The SPF mechanism for relays whose published SPF domain is known; any other relay: a:HOST.
_RELAY_SPF = {
    "smtp.office365.com": "include:spf.protection.outlook.com",
    "smtp-mail.outlook.com": "include:spf.protection.outlook.com",
    "smtp.gmail.com": "include:_spf.google.com",
    "smtp-relay.gmail.com": "include:_spf.google.com",
    "smtp.mailgun.org": "include:mailgun.org",
    "smtp.sendgrid.net": "include:sendgrid.net",
    "smtp-relay.brevo.com": "include:spf.brevo.com",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_SLD_SUFFIXES = {"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"}


@dataclass(frozen=True)
class DnsFinding:
    level: Level
    check: str  # what was looked at: "SPF bounces.example.org"
    rule: str  # the provider rule it serves
    message: str
    record: str = ""  # what to publish: zone file lines (a setting to change first, if any)

    def __str__(self) -> str:
        text = f"{self.level}: {self.check}: {self.message} [{self.rule}]"
        return text + "".join(f"\n  publish: {line}" for line in self.record.splitlines())


class DnsLookup:
    """TXT and MX answers through one resolver; a name with no such record is an empty answer,
    a resolver that does not answer is DnsUnavailable."""

    def __init__(self, resolver: str = "", timeout: float = 3.0) -> None:
        if resolver:
            host, port = parse_resolver(resolver)
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DnsUnavailable("no DNS resolver is configured on this machine") from None
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.where = resolver or "the system's resolver"

    def _answer(self, name: str, kind: str) -> list[dns.rdata.Rdata]:
        try:
            return list(self._resolver.resolve(name, kind, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.NoNameservers:
            raise DnsUnavailable(f"{self.where} could not answer for {name} (SERVFAIL or refused)") from None
        except dns.exception.Timeout:
            raise DnsUnavailable(f"{self.where} did not answer for {name} in time") from None
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"looking up {name} failed: {exc}") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]  # type: ignore[attr-defined]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted((r.preference, str(r.exchange).rstrip(".")) for r in self._answer(name, "MX"))  # type: ignore[attr-defined]


def organisational(domain: str) -> str:
    """The organisational domain (RFC 7489 3.2), approximated without the Public Suffix List."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(domain: str, from_domain: str, strict: bool = False) -> bool:
    """Relaxed alignment: the same organisational domain; strict: the same domain."""
    if strict:
        return domain.lower() == from_domain.lower()
    return organisational(domain) == organisational(from_domain)


def relay_spf_mechanism(host: str) -> str:
    """The SPF mechanism that authorises a relay: its provider's include, or a:HOST."""
    return _RELAY_SPF.get(host.lower(), f"a:{host}" if host else "mx")


def txt_record(name: str, value: str) -> str:
    """A zone file TXT line; values over 255 octets split into several strings (RFC 7208 3.3)."""
    chunks = textwrap.wrap(value, 255, break_long_words=True, break_on_hyphens=False, drop_whitespace=False)
    strings = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{name}. IN TXT {strings if len(chunks) == 1 else '( ' + strings + ' )'}"


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def envelope_domain(settings: Settings) -> str:
    """The MAIL FROM domain: the bounce address's (VERP), else From's."""
    address = settings.bounces.address or settings.newsletter.from_
    return address.rpartition("@")[2].strip(" >").lower()


def check_spf(lookup: DnsLookup, domain: str, mechanism: str) -> DnsFinding:
    records = [t for t in lookup.txt(domain) if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    check = f"SPF {domain}"
    wanted = txt_record(domain, f"v=spf1 {mechanism} ~all")
    if not records:
        return DnsFinding("fail", check, RULE_SPF, "no SPF record: receivers cannot tell your relay may send", wanted)
    if len(records) > 1:
        return DnsFinding("fail", check, RULE_SPF, "two or more SPF records: a permanent error (RFC 7208 3.2)", wanted)
    terms = records[0].lower().split()
    if "+all" in terms or "all" in terms:
        return DnsFinding("fail", check, RULE_SPF, f"{records[0]!r} lets anyone send as {domain}", wanted)
    if mechanism.startswith("include:") and mechanism not in terms and "redirect=" not in records[0].lower():
        said = f"{records[0]!r} does not name your relay ({mechanism})"
        return DnsFinding("warn", check, RULE_SPF, said, txt_record(domain, _with(records[0], mechanism)))
    if not any(t in ("~all", "-all") or t.startswith("redirect=") for t in terms):
        return DnsFinding("warn", check, RULE_SPF, f"{records[0]!r} ends in no ~all or -all", wanted)
    return DnsFinding("pass", check, RULE_SPF, f"published: {records[0]!r}")


def _with(record: str, mechanism: str) -> str:
    words = record.split()
    return " ".join([words[0], mechanism, *words[1:]])


def public_value(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> tuple[str, str]:
    """(k=, p=) of a key's DKIM record: RSA as SubjectPublicKeyInfo, Ed25519 raw (RFC 8463)."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "rsa", base64.b64encode(der).decode("ascii")
    return "ed25519", base64.b64encode(key.public_key().public_bytes_raw()).decode("ascii")


def check_dkim(lookup: DnsLookup, settings: Settings) -> list[DnsFinding]:
    dkim = settings.dkim
    if not dkim.enabled:
        said = "DKIM is off: set [dkim] domain, selector and key (`newsletter dkim keygen` makes a key and its record)"
        return [DnsFinding("fail", "DKIM", RULE_DKIM, said)]
    found = []
    selectors = [(dkim.selector, False)] + ([(dkim.ed25519_selector, True)] if dkim.ed25519_enabled else [])
    for selector, ed in selectors:
        key = parse_key(load_key(settings, ed25519=ed), selector, dkim.domain).key
        kind, ours = public_value(key)
        name = f"{selector}._domainkey.{dkim.domain}"
        wanted = txt_record(name, f"v=DKIM1; k={kind}; p={ours}")
        records = [_tags(t) for t in lookup.txt(name)]
        records = [r for r in records if "p" in r]
        check = f"DKIM {name}"
        if not records:
            found.append(
                DnsFinding("fail", check, RULE_DKIM, "no DKIM key is published: every signature fails", wanted)
            )
        elif not any(r["p"] for r in records):
            found.append(DnsFinding("fail", check, RULE_DKIM, "the key is revoked (empty p=)", wanted))
        elif not any(r["p"] == ours for r in records):
            said = "the published key is not the key this workspace signs with: every signature fails"
            found.append(DnsFinding("fail", check, RULE_DKIM, said, wanted))
        else:
            found.append(DnsFinding("pass", check, RULE_DKIM, f"the published {kind} key matches ours"))
    return found


def find_dmarc(lookup: DnsLookup, from_domain: str) -> tuple[str, list[str]]:
    """(where, records) of the DMARC policy: the From domain's, else its organisational domain's."""
    for domain in dict.fromkeys((from_domain, organisational(from_domain))):
        records = [t for t in lookup.txt(f"_dmarc.{domain}") if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if records:
            return domain, records
    return organisational(from_domain), []


def check_dmarc(lookup: DnsLookup, from_domain: str) -> tuple[DnsFinding, dict[str, str]]:
    where, records = find_dmarc(lookup, from_domain)
    check = f"DMARC _dmarc.{where}"
    wanted = txt_record(f"_dmarc.{where}", f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{where}")
    if not records:
        return DnsFinding("fail", check, RULE_DMARC, f"no DMARC record for {from_domain}", wanted), {}
    if len(records) > 1:
        return DnsFinding("fail", check, RULE_DMARC, "two or more DMARC records: receivers ignore both", wanted), {}
    tags = _tags(records[0])
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return DnsFinding("fail", check, RULE_DMARC, f"{records[0]!r} has no valid p= policy", wanted), {}
    said = f"published with p={policy}" + (" (monitoring only: reports, no enforcement)" if policy == "none" else "")
    return DnsFinding("pass", check, RULE_DMARC, said), tags


def check_bounce_domain(lookup: DnsLookup, settings: Settings) -> list[DnsFinding]:
    """The VERP domain must receive the reports (MX) and is what SPF is checked against."""
    domain = envelope_domain(settings)
    exchanges = lookup.mx(domain)
    if exchanges:
        return [DnsFinding("pass", f"MX {domain}", RULE_BOUNCE, f"reports go to {exchanges[0][1]}")]
    host = settings.bounces.host or f"mail.{domain}"
    said = "no MX record: delivery reports to the bounce address cannot arrive"
    return [DnsFinding("fail", f"MX {domain}", RULE_BOUNCE, said, f"{domain}. IN MX 10 {host}.")]


def check_alignment(settings: Settings, dmarc: dict[str, str], dkim_ok: bool) -> list[DnsFinding]:
    from_domain = settings.newsletter.from_domain
    envelope = envelope_domain(settings)
    spf_aligned = aligned(envelope, from_domain, strict=dmarc.get("aspf") == "s")
    dkim_domain = settings.dkim.domain
    dkim_aligned = bool(dkim_domain) and dkim_ok and aligned(dkim_domain, from_domain, strict=dmarc.get("adkim") == "s")
    found = []
    if settings.bounces.address and not spf_aligned:
        level: Level = "warn" if dkim_aligned else "fail"
        better = f"bounces.{organisational(from_domain)}"
        said = (
            f"the bounce domain {envelope} is not aligned with From's {from_domain}: SPF may pass for it but "
            "cannot count for DMARC"
            + ("; DKIM carries the alignment" if dkim_aligned else ", and no aligned DKIM does")
        )
        mx_host = settings.bounces.host or f"mail.{better}"
        spf = txt_record(better, f"v=spf1 {relay_spf_mechanism(settings.smtp.host)} ~all")
        record = f'[bounces] address = "bounces@{better}"\n{better}. IN MX 10 {mx_host}.\n{spf}'
        found.append(DnsFinding(level, f"alignment {envelope}", RULE_ALIGN, said, record))
    if dkim_domain and not aligned(dkim_domain, from_domain, strict=dmarc.get("adkim") == "s"):
        said = f"[dkim] domain {dkim_domain} is not aligned with From's {from_domain}"
        found.append(
            DnsFinding("fail", f"alignment d={dkim_domain}", RULE_ALIGN, said, f'[dkim] domain = "{from_domain}"')
        )
    if not spf_aligned and not dkim_aligned:
        said = "neither SPF nor DKIM is aligned with From: DMARC fails for every message"
        found.append(DnsFinding("fail", f"alignment {from_domain}", RULE_ALIGN, said))
    elif not found:
        how = " and ".join(n for n, ok in (("SPF", spf_aligned), ("DKIM", dkim_aligned)) if ok)
        found.append(DnsFinding("pass", f"alignment {from_domain}", RULE_ALIGN, f"From is aligned through {how}"))
    return found


def check_dns(settings: Settings, lookup: DnsLookup | None = None) -> list[DnsFinding]:
    """Every DNS finding for the workspace's domains; DnsUnavailable when the resolver does not answer."""
    d = settings.deliverability
    lookup = lookup or DnsLookup(d.resolver, d.dns_timeout)
    from_domain = settings.newsletter.from_domain
    findings = [check_spf(lookup, envelope_domain(settings), relay_spf_mechanism(settings.smtp.host))]
    dkim = check_dkim(lookup, settings)
    dmarc, tags = check_dmarc(lookup, from_domain)
    findings += [*dkim, dmarc]
    if settings.bounces.address:
        findings += check_bounce_domain(lookup, settings)
    dkim_ok = bool(dkim) and all(f.level == "pass" for f in dkim)
    return findings + check_alignment(settings, tags, dkim_ok)


def preflight_wanted(settings: Settings) -> bool:
    """A send through a relay or API checks DNS first; a relay on loopback (a test setup or a local
    MTA) only with a resolver configured, so such a send never asks the network's DNS by surprise."""
    if settings.transport.kind != "smtp":
        return True
    if not settings.smtp.host:
        return False
    return bool(settings.deliverability.resolver) or settings.smtp.host.lower() not in LOOPBACK


def preflight_findings(settings: Settings) -> list[Finding]:
    """What ``send``'s pre-flight says about DNS: each warn and fail as a warning, or one warning
    that DNS was not checked when it cannot be reached; never a reason not to send."""
    if not preflight_wanted(settings):
        return []
    try:
        findings = check_dns(settings)
    except DnsUnavailable as exc:
        return [Finding("dns", None, "warning", f"not checked: {exc} (`newsletter check --dns` tries again)")]
    return [Finding("dns", None, "warning", str(f).partition(": ")[2]) for f in findings if f.level != "pass"]
