"""dnscheck.py: `check --dns` against a real DNS server on loopback (dnslib) serving a test zone:
SPF, DKIM (the published key against ours), DMARC, the bounce domain's MX and alignment, each
with the record to publish; the record we print, published, passes; send's pre-flight warns and
sends, and says once that DNS was not checked when the resolver does not answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, make_workspace
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.compose.dnscheck import DnsLookup, aligned, check_dns, organisational, txt_record
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import ConfigError, DnsUnavailable
from smtp_servers import SMTPTestServer
from stand_ins.dns_server import ZoneServer

PAIR = generate_key("sel", "example.org")
OTHER = generate_key("sel", "example.org")
SPF = 'news.example.org. IN TXT "v=spf1 a:127.0.0.1 ~all"'
MX = "news.example.org. IN MX 10 mail.example.org."
DMARC = '_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:d@example.org"'


def workspace(root: Path, resolver: str, bounces: str = "bounces@news.example.org", port: int = 25) -> Path:
    make_workspace(root, port, 3)
    write_key(PAIR, root / "dkim.pem")
    with (root / "newsletter.toml").open("a") as handle:
        handle.write(
            f'[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n'
            f'[bounces]\naddress = "{bounces}"\n'
            f'[deliverability]\nresolver = "{resolver}"\ndns_timeout = 1.0\n'
        )
    return root


def zone(*records: str) -> str:
    return "\n".join(records) + "\n"


def published_key(pair: object = PAIR) -> str:
    return txt_record("sel._domainkey.example.org", pair.dns_value)  # type: ignore[attr-defined]


def levels(findings: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {f.check: f.level for f in findings}


def test_a_zone_that_follows_every_rule_passes(tmp_path: Path) -> None:
    with ZoneServer(zone(SPF, MX, DMARC, published_key())) as resolver:
        findings = check_dns(load_settings(workspace=workspace(tmp_path / "ws", resolver)))
    assert levels(findings) == {
        "SPF news.example.org": "pass",
        "DKIM sel._domainkey.example.org": "pass",
        "DMARC _dmarc.example.org": "pass",
        "MX news.example.org": "pass",
        "alignment example.org": "pass",
    }
    assert all(not f.record for f in findings)


def test_missing_dmarc_and_a_misaligned_bounce_domain_say_what_to_publish(tmp_path: Path) -> None:
    records = zone(
        'bounces.example.net. IN TXT "v=spf1 a:127.0.0.1 ~all"',
        "bounces.example.net. IN MX 10 mx.example.net.",
        published_key(),
    )
    with ZoneServer(records) as resolver:
        root = workspace(tmp_path / "ws", resolver, bounces="bounces@bounces.example.net")
        findings = check_dns(load_settings(workspace=root))
    by = {f.check: f for f in findings}
    dmarc = by["DMARC _dmarc.example.org"]
    assert dmarc.level == "fail" and "550 5.7.515" in dmarc.rule
    assert dmarc.record == '_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"'
    bounce = by["alignment bounces.example.net"]
    assert bounce.level == "warn" and "not aligned" in bounce.message and "DKIM carries" in bounce.message
    assert bounce.record.splitlines() == [
        '[bounces] address = "bounces@bounces.example.org"',
        "bounces.example.org. IN MX 10 mail.bounces.example.org.",
        'bounces.example.org. IN TXT "v=spf1 a:127.0.0.1 ~all"',
    ]
    assert "publish: _dmarc.example.org. IN TXT" in str(dmarc)


def test_dkim_missing_foreign_or_revoked_keys_fail_with_our_record(tmp_path: Path) -> None:
    for records, said in (
        (zone(SPF, DMARC), "no DKIM key is published"),
        (zone(SPF, DMARC, published_key(OTHER)), "not the key this workspace signs with"),
        (zone(SPF, DMARC, 'sel._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p="'), "revoked"),
    ):
        with ZoneServer(records) as resolver:
            findings = check_dns(load_settings(workspace=workspace(tmp_path / said[:6], resolver, bounces="")))
        dkim = next(f for f in findings if f.check.startswith("DKIM"))
        assert dkim.level == "fail" and said in dkim.message
        assert dkim.record == published_key()  # what to publish: our key, split into 255-octet strings
        assert levels(findings)["alignment example.org"] == "pass"  # SPF still aligns: From's own domain


@pytest.mark.parametrize(
    ("records", "level", "said"),
    [
        ((), "fail", "no SPF record"),
        (
            ('news.example.org. IN TXT "v=spf1 -all"', 'news.example.org. IN TXT "v=spf1 mx ~all"'),
            "fail",
            "two or more",
        ),
        (('news.example.org. IN TXT "v=spf1 +all"',), "fail", "lets anyone send"),
        (('news.example.org. IN TXT "v=spf1 mx"',), "warn", "no ~all or -all"),
    ],
)
def test_spf_of_the_bounce_domain(tmp_path: Path, records: tuple[str, ...], level: str, said: str) -> None:
    with ZoneServer(zone(MX, DMARC, published_key(), *records)) as resolver:
        findings = check_dns(load_settings(workspace=workspace(tmp_path / "ws", resolver)))
    spf = findings[0]
    assert (spf.check, spf.level) == ("SPF news.example.org", level) and said in spf.message
    if level == "fail":
        assert spf.record == 'news.example.org. IN TXT "v=spf1 a:127.0.0.1 ~all"'


def test_no_mx_for_the_bounce_domain_fails(tmp_path: Path) -> None:
    with ZoneServer(zone(SPF, DMARC, published_key())) as resolver:
        findings = check_dns(load_settings(workspace=workspace(tmp_path / "ws", resolver)))
    mx = next(f for f in findings if f.check == "MX news.example.org")
    assert mx.level == "fail" and mx.record == "news.example.org. IN MX 10 mail.news.example.org."


def test_a_resolver_that_does_not_answer_is_dns_unavailable() -> None:
    lookup = DnsLookup(f"127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(DnsUnavailable, match=r"127\.0\.0\.1"):
        lookup.txt("example.org")


def test_a_bad_resolver_setting_names_the_key(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", "dns.example.org:53")
    with pytest.raises(ConfigError, match="resolver must be an IP address") as caught:
        load_settings(workspace=root)
    assert caught.value.line is not None


def test_organisational_domains_and_alignment() -> None:
    assert organisational("bounces.news.example.org") == "example.org"
    assert organisational("news.example.co.uk") == "example.co.uk"
    assert aligned("bounces.example.org", "example.org")
    assert not aligned("bounces.example.org", "example.org", strict=True)
    assert not aligned("example.net", "example.org")


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_check_dns_on_the_command_line(tmp_path: Path) -> None:
    with ZoneServer(zone(SPF, MX, published_key())) as resolver:
        result = run_cli(workspace(tmp_path / "ws", resolver), "check", "--dns")
    assert result.returncode == 1, result.stderr
    assert "fail: DMARC _dmarc.example.org: no DMARC record for example.org" in result.stdout
    assert "publish: _dmarc.example.org. IN TXT" in result.stdout
    assert "pass: DKIM sel._domainkey.example.org" in result.stdout


def test_send_preflight_warns_about_dns_and_sends(tmp_path: Path) -> None:
    with SMTPTestServer() as server, ZoneServer(zone(SPF, MX, published_key())) as resolver:
        root = workspace(tmp_path / "ws", resolver, port=server.port)
        result = run_cli(root, "send", "issue.md", "--yes")
    assert result.returncode == 0, result.stderr
    assert "dns: warning: DMARC _dmarc.example.org: no DMARC record for example.org" in result.stderr
    assert "publish: _dmarc.example.org. IN TXT" in result.stderr
    assert len(server.handler.messages) == 3


def test_send_preflight_with_dns_unreachable_is_one_note(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = workspace(tmp_path / "ws", f"127.0.0.1:{free_port()}", port=server.port)
        result = run_cli(root, "send", "issue.md", "--yes")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("dns:")]
    assert len(notes) == 1 and "not checked" in notes[0]
    assert len(server.handler.messages) == 3


def test_the_preflight_asks_dns_only_for_a_real_relay_or_a_configured_resolver(tmp_path: Path) -> None:
    from dataclasses import replace

    from newsletter_mailer.compose.dnscheck import preflight_findings, preflight_wanted

    settings = load_settings(workspace=workspace(tmp_path / "ws", f"127.0.0.1:{free_port()}"))
    loopback = replace(settings, deliverability=replace(settings.deliverability, resolver=""))
    assert not preflight_wanted(loopback) and preflight_findings(loopback) == []
    assert preflight_wanted(settings)  # a resolver is configured: the tests' own DNS server
    assert preflight_wanted(replace(loopback, smtp=replace(loopback.smtp, host="smtp.example.org")))
    assert preflight_wanted(replace(loopback, transport=replace(loopback.transport, kind="ses")))
    assert not preflight_wanted(replace(loopback, smtp=replace(loopback.smtp, host="")))
