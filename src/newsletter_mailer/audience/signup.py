"""Double opt-in signups: the form, its validation, the signed expiring confirmation link, and the
list at send time (the CSV plus confirmed signups).

Every value a visitor types is hostile: it is length-capped, stripped of control characters,
escaped for HTML where it is shown, and only ever text in a header (the confirmation mail is
written by compose/confirmation.py through the hardened header writer).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from email_validator import EmailNotValidError

from ..config import RESERVED_FIELD_KEYS, field_key
from ..errors import TokenError
from .links import TokenSigner
from .subscribers import Subscriber, address_key, clean_value, normalise_address

__all__ = [
    "HONEYPOT",
    "MAX_FORM_FIELDS",
    "ConfirmCodec",
    "FormError",
    "RequestRef",
    "Tally",
    "field_key",
    "form_html",
    "mailbox_key",
    "merge_lists",
    "read_form",
]

HONEYPOT = RESERVED_FIELD_KEYS[2]  # "website": hidden from people; bots that fill every field fill it
MAX_VALUE = 200
MAX_FORM_FIELDS = 20  # email, name, the honeypot and at most 10 extra fields (config.py), with room to spare
# Providers that deliver ``a.da@`` and ``ada@`` to one mailbox (and the domains that are one of them).
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


class FormError(ValueError):
    """A form that cannot be accepted; the message is safe to show to the visitor."""


@dataclass(frozen=True)
class SignupForm:
    subscriber: Subscriber
    bot: bool  # the honeypot was filled: answer as usual, send nothing


def read_form(values: Mapping[str, list[str]], extra_fields: Iterable[str]) -> SignupForm:
    """Validate a posted form; FormError for an address that cannot be one or a value longer than
    the form allows (the page's inputs say ``maxlength``: only a script sends more)."""
    first = {key: clean_value(items[0] if items else "") for key, items in values.items()}
    raw = first.get("email", "")
    if not raw:
        raise FormError("Please enter your email address.")
    if any(len(value) > MAX_VALUE for value in first.values()):
        raise FormError(f"Each answer can be at most {MAX_VALUE} characters long.")
    try:
        address = normalise_address(raw)
    except EmailNotValidError:
        raise FormError("That does not look like an email address; please check it.") from None
    extras = tuple((field_key(label), first.get(field_key(label), "")) for label in extra_fields)
    subscriber = Subscriber(email=address, name=first.get("name", ""), fields=extras)
    return SignupForm(subscriber, bot=bool(first.get(HONEYPOT)))


def mailbox_key(address: str) -> str:
    """The mailbox an address reaches, for counting confirmation mails only (the address is stored
    and mailed as typed): ``Victim+7@Example.net`` and ``victim@example.net`` are one, and at
    providers that ignore dots ``vi.ctim@gmail.com`` and ``victim@googlemail.com`` are too."""
    local, _, domain = address.lower().rpartition("@")
    local = local.partition("+")[0] or local  # a sub-address (RFC 5233); "+x@" alone is kept whole
    if domain in _DOTS_IGNORED:
        local, domain = local.replace(".", ""), _DOTS_IGNORED[domain]
    return f"{local}@{domain}"


@dataclass(frozen=True)
class RequestRef:
    """What a confirmation link names: a signup request's number, the second it was made, the
    random nonce stored with it and its address, all under the MAC, so a link names one request
    and no other (a number alone could be another person's request, issue 20). A link made before
    nonces has neither (``nonce`` and ``address`` empty) and confirms only a request made then."""

    id: int
    requested: int
    nonce: str = ""
    address: str = ""


@dataclass(frozen=True)
class ConfirmCodec:
    """Signed confirmation tokens naming a signup request; they expire after ``hours``."""

    signer: TokenSigner
    hours: float

    @classmethod
    def for_list(cls, secret: bytes, list_id: str, hours: float) -> ConfirmCodec:
        # Its own list label, so no unsubscribe token is ever accepted as a confirmation.
        return cls(TokenSigner(secret, f"{list_id}#signup"), hours)

    def token(self, request_id: int, requested: float, nonce: str = "", address: str = "") -> str:
        # The address goes last: it is the one part that may hold a dot.
        bound = f".{nonce}.{address}" if nonce else ""
        return self.signer.token(f"{request_id}.{int(requested)}{bound}")

    def verify(self, token: str, now: float | None = None) -> RequestRef:
        """The request a token names; TokenError if altered, foreign or expired."""
        number, _, rest = self.signer.verify(token).partition(".")
        stamp, _, rest = rest.partition(".")
        nonce, _, address = rest.partition(".")
        if not (number.isdigit() and stamp.isdigit()) or bool(nonce) != bool(address):
            raise TokenError("confirmation token is malformed")
        if (now if now is not None else time.time()) > int(stamp) + self.hours * 3600:
            raise TokenError("confirmation token has expired")
        return RequestRef(int(number), int(stamp), nonce, address)


def form_html(
    action: str,
    extra_fields: Iterable[str],
    *,
    error: str = "",
    email: str = "",
    gettext: Callable[[str], str] = str,
) -> str:
    """The signup form: email, name, the extra fields, and the hidden honeypot; its words through
    ``gettext`` (the page's catalogue, compose/i18n.py), English as written by default."""
    _ = gettext
    email_label, name_label, trap_label, button = (
        _("Email address"),
        _("Name (optional)"),
        _("Leave this empty"),
        _("Subscribe"),
    )
    optional = _("%(field)s (optional)")
    rows = [f'<p class="error" role="alert">{html.escape(error)}</p>'] if error else []
    rows.append(
        f'<p><label for="nl-email">{html.escape(email_label)}</label><br>'
        f'<input id="nl-email" name="email" type="email" required maxlength="{MAX_VALUE}" '
        f'autocomplete="email" value="{html.escape(email)}"></p>'
    )
    rows.append(
        f'<p><label for="nl-name">{html.escape(name_label)}</label><br>'
        f'<input id="nl-name" name="name" type="text" maxlength="{MAX_VALUE}" autocomplete="name"></p>'
    )
    for label in extra_fields:
        key = html.escape(field_key(label))
        rows.append(
            f'<p><label for="nl-{key}">{html.escape(optional % {"field": label})}</label><br>'
            f'<input id="nl-{key}" name="{key}" type="text" maxlength="{MAX_VALUE}"></p>'
        )
    rows.append(
        f'<p style="position:absolute;inset-inline-start:-9999px" aria-hidden="true"><label for="nl-{HONEYPOT}">'
        f'{html.escape(trap_label)}</label><input id="nl-{HONEYPOT}" name="{HONEYPOT}" type="text" tabindex="-1" '
        'autocomplete="off"></p>'
    )
    rows.append(f'<p><button type="submit">{html.escape(button)}</button></p>')
    return f'<form method="post" action="{html.escape(action)}">\n' + "\n".join(rows) + "\n</form>"


@dataclass
class Tally:
    """Where the list at send time came from."""

    from_csv: int = 0
    from_signups: int = 0


def merge_lists(csv_rows: Iterable[Subscriber], signups: Iterable[Subscriber], tally: Tally) -> Iterator[Subscriber]:
    """The CSV rows, then each confirmed signup the CSV does not already hold. Only the signups
    are kept in memory (the CSV may have a million rows; the signups are few)."""
    waiting = {address_key(s.email): s for s in signups}
    for subscriber in csv_rows:
        if waiting:  # most sends have no signup left to match: no key to make per row
            waiting.pop(address_key(subscriber.email), None)
        tally.from_csv += 1
        yield subscriber
    for subscriber in waiting.values():
        tally.from_signups += 1
        yield subscriber
