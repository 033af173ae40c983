"""visitors.py: X-Forwarded-For read only through trusted proxies, from the right; the
per-process signup window per visitor."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from newsletter_mailer.web.visitors import SignupGate, TrustedProxies


def proxies(*networks: str) -> TrustedProxies:
    return TrustedProxies([ipaddress.ip_network(n, strict=False) for n in networks])


def test_without_trusted_proxies_the_header_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    reader = proxies()
    for spoof in ("203.0.113.9", "198.51.100.1, 203.0.113.9"):
        assert reader.client("127.0.0.1", spoof) == "127.0.0.1"
    assert caplog.text.count("X-Forwarded-For from 127.0.0.1 ignored") == 1  # said once, not per request


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "198.51.100.66, 203.0.113.9", "203.0.113.9"),  # the visitor's own words are left
        ("10.0.0.5", "203.0.113.9, 10.0.0.7", "203.0.113.9"),  # a chain of our proxies
        ("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # only proxies: the farthest
        ("10.0.0.5", "203.0.113.9, not-an-ip\x1b[31m, 10.0.0.7", "10.0.0.7"),  # words are not an address
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", " , ", "10.0.0.5"),
        ("::1", "2001:db8::1", "2001:db8::1"),
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # not our proxy: its header is not read
    ],
)
def test_the_nearest_hop_that_is_not_ours_is_the_visitor(peer: str, header: str, client: str) -> None:
    assert proxies("10.0.0.0/8", "::1").client(peer, header) == client


def test_a_trusted_proxy_without_the_header_is_said(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert proxies("127.0.0.1").client("127.0.0.1", None) == "127.0.0.1"
    assert "carry no X-Forwarded-For" in caplog.text


def test_the_gate_counts_per_visitor_in_a_sliding_hour() -> None:
    gate = SignupGate(3, max_visitors=2)
    assert [gate.admit("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert all(gate.admit("b", now=3) for _ in range(3)) and not gate.admit("b", now=3)
    assert gate.admit("a", now=3600.5)  # a's first has left the hour
    gate.admit("c", now=4)  # over max_visitors: the least recent (b) is forgotten, a stays counted
    assert not gate.admit("a", now=3600.9) and gate.admit("b", now=3600.9)
