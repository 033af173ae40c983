"""Address validation for a whole list: email-validator's answer, computed once per domain.

email-validator is the reference for what an address is and how it is written over SMTP, and it
stays the only judge of every address it would refuse. It is too slow for a million rows (about
22 µs of CPU an address, most of it the domain's IDNA and Unicode checks, which are the same for
every address of a domain), so ``Normaliser`` takes a fast path for the common shape only: a
plain ASCII dot-atom local part before the one ``@``. Its domain part is checked by
email-validator itself (on a probe address with that domain), once per distinct domain; the
local part by email-validator's own dot-atom pattern, copied below. Anything else (quotes,
non-ASCII local parts, the RFC 2142 mailbox names email-validator lower-cases, an address too
long, a domain email-validator refused) goes to email-validator whole, so its normalised form and
its error messages are exactly the library's. tests/audience/test_addresses.py holds the fast
path against email-validator on a corpus of normal and hostile addresses.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

__all__ = ["Normaliser", "reference_address"]

# email-validator's DOT_ATOM_TEXT (rfc_constants.py), RFC 5322 3.2.3: atext runs joined by single dots.
_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
_DOT_ATOM = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
# email-validator lower-cases these local parts (its CASE_INSENSITIVE_MAILBOX_NAMES, RFC 2142):
# left to it. A copy, so that a new release's list shows as a failing test, not a silent change.
_MAILBOX_NAMES = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster", "hostmaster"}
    | {"usenet", "news", "webmaster", "www", "uucp", "ftp"}
)
_MAX_ADDRESS = 254  # octets, RFC 5321 4.5.3.1.3 (email-validator's EMAIL_MAX_LENGTH)
_PROBE = "a"  # a local part that is valid and changes nothing about how the domain part is read
_REFUSED = ("", 0)  # a domain email-validator refused: the address goes to it whole for the reason


def reference_address(raw: str) -> str:
    """The address to send to, as email-validator writes it (syntax only: no DNS look-ups); raises
    EmailNotValidError."""
    result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    return result.ascii_email or result.normalized


class Normaliser:
    """``reference_address`` for many addresses: the same answers, each domain checked once.

    The cache holds at most ``limit`` domains and starts again when full, so a hostile list of a
    million domains costs what email-validator costs and no more memory."""

    def __init__(self, limit: int = 50_000) -> None:
        self._domains: dict[str, tuple[str, int]] = {}
        self._limit = limit
        self.domains_checked = 0  # how many times email-validator was asked about a domain
        self.answered_fast = 0  # addresses answered without asking email-validator about them

    def __call__(self, raw: str) -> str:
        local, at, domain = raw.partition("@")
        if at and local.lower() not in _MAILBOX_NAMES and _DOT_ATOM.fullmatch(local):
            ascii_domain, longest = self._domains.get(domain) or self._domain(domain)
            # email-validator checks the address as given, normalised and with the ASCII domain:
            # ``longest`` is the longest of the three domain forms, in UTF-8 octets.
            if ascii_domain and len(local) + 1 + longest <= _MAX_ADDRESS:
                self.answered_fast += 1
                return f"{local}@{ascii_domain}"
        return reference_address(raw)

    def _domain(self, domain: str) -> tuple[str, int]:
        """email-validator's ASCII form of ``domain`` and the longest of its forms, or _REFUSED."""
        self.domains_checked += 1
        try:
            result = validate_email(f"{_PROBE}@{domain}", check_deliverability=False, allow_smtputf8=True)
        except EmailNotValidError:
            found = _REFUSED
        else:
            forms = (domain, result.domain, result.ascii_domain)
            found = (result.ascii_domain, max(len(form.encode("utf-8", "surrogatepass")) for form in forms))
        if len(self._domains) >= self._limit:
            self._domains.clear()
        self._domains[domain] = found
        return found
