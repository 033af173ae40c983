"""Who a visitor is and how often they may sign up: the client address read through the trusted
proxies only (``[serve] trusted_proxies``), and a per-process window of signups per address.

X-Forwarded-For is written by whoever sends the request, so it is read only when the TCP peer is
a proxy we were told to trust, and then from the right: the first hop that is not one of our
proxies is the visitor (the entries to its left are the visitor's own words). What is returned is
always an IP address (it is logged and kept with the consent record), never the header's text.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence

__all__ = ["Network", "SignupGate", "TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
log = logging.getLogger("newsletter_mailer.signup")
_MAX_HOP = 64  # longer than any written IPv6 address (with a zone)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _trusted(host: str, proxies: Sequence[Network]) -> bool:
    address = _address(host)
    return address is not None and any(address in network for network in proxies)


class TrustedProxies:
    """Reads the visitor's address through the proxies in ``[serve] trusted_proxies``."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = tuple(networks)
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, peer: str) -> None:
        if key not in self._warned and len(self._warned) < 100:
            self._warned.add(key)
            log.warning(message, peer)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The TCP peer, or, when the peer is a trusted proxy, the nearest hop of X-Forwarded-For
        that is not one of our proxies."""
        if not _trusted(peer, self.networks):
            if forwarded_for:
                self._warn_once(
                    f"untrusted {peer}",
                    "X-Forwarded-For from %s ignored: if it is your proxy, list it in [serve] trusted_proxies",
                    peer,
                )
            return peer
        if not forwarded_for:
            self._warn_once(
                f"bare {peer}",
                "requests from the trusted proxy %s carry no X-Forwarded-For: every visitor behind it counts "
                "as one for the signup limits; have the proxy set the header",
                peer,
            )
            return peer
        nearest = peer
        for hop in reversed([hop.strip()[:_MAX_HOP] for hop in forwarded_for.split(",")]):
            if not _address(hop):  # not an address: words, not a hop; the last hop we know stands
                return nearest
            if not _trusted(hop, self.networks):
                return hop
            nearest = hop
        return nearest


class SignupGate:
    """Signups accepted from each visitor address in the last hour, in this process.

    It is asked before the answer is sent, so a visitor over the limit is told so (429) instead of
    "check your inbox" with nothing on its way; what it says depends only on the visitor's own
    address, never on the address typed into the form. The store's count of mails per address
    (after the answer) keeps the limit across several ``serve`` processes.
    """

    def __init__(self, per_hour: int, *, window: float = 3600.0, max_visitors: int = 100_000) -> None:
        self.per_hour, self.window, self.max_visitors = per_hour, window, max_visitors
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, visitor: str, now: float | None = None) -> bool:
        """Count one signup from ``visitor``; False (and not counted) once it is over the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._seen.pop(visitor, None) or deque()
            while stamps and stamps[0] <= now - self.window:
                stamps.popleft()
            admitted = len(stamps) < self.per_hour
            if admitted:
                stamps.append(now)
            if stamps:
                self._seen[visitor] = stamps  # the most recent visitor last
            while len(self._seen) > self.max_visitors:
                self._seen.popitem(last=False)  # the longest quiet goes first
            return admitted
