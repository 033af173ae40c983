"""Double opt-in signups: the form, its validation, the signed expiring confirmation link, and the
list at send time (the CSV plus confirmed signups).

Every value a visitor types is hostile: it is length-capped, stripped of control characters,
escaped for HTML where it is shown, and only ever text in a header (the confirmation mail is
written by compose/confirmation.py through the hardened header writer).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError

from ..config import RESERVED_FIELD_KEYS, field_key
from ..errors import TokenError
from .choices import topics_cell
from .links import TokenSigner
from .subscribers import Subscriber, address_key, clean_value, normalise_address

__all__ = [
    "HONEYPOT",
    "LANGUAGE",
    "MAX_FORM_FIELDS",
    "ConfirmCodec",
    "FormError",
    "RequestRef",
    "Tally",
    "chosen_language",
    "field_key",
    "form_html",
    "mailbox_key",
    "merge_lists",
    "read_form",
]

HONEYPOT = RESERVED_FIELD_KEYS[2]  # "website": hidden from people; bots that fill every field fill it
LANGUAGE = RESERVED_FIELD_KEYS[3]  # "language": the reader's choice, stored in the request's fields
MAX_VALUE = 200
MAX_FORM_FIELDS = 20  # email, name, the honeypot and at most 10 extra fields (config.py), with room to spare;
# a form that offers topics takes one more field per topic
# Providers that deliver ``a.da@`` and ``ada@`` to one mailbox (and the domains that are one of them).
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


class FormError(ValueError):
    """A form that cannot be accepted; the message is safe to show to the visitor."""


@dataclass(frozen=True)
class SignupForm:
    subscriber: Subscriber
    bot: bool  # the honeypot was filled: answer as usual, send nothing
    language: str = ""  # the language chosen on the form (one of those offered), or "" for none


def chosen_language(values: Mapping[str, list[str]], languages: Sequence[str]) -> str:
    """The language a posted form chose, when it is one of ``languages`` (else ""): the words of
    the page that answers it, even when the form itself is refused."""
    posted = clean_value((values.get(LANGUAGE) or [""])[0]).lower()
    return next((tag for tag in languages if tag.lower() == posted), "") if len(languages) > 1 else ""


def _language(first: Mapping[str, str], languages: Sequence[str], _: Callable[[str], str]) -> str:
    """The language chosen, as configured (``fr-BE``), when the form offers a choice; a value that
    is not one of those offered is refused, never stored."""
    if len(languages) < 2:  # no choice offered: whatever was posted is ignored
        return ""
    posted = first.get(LANGUAGE, "")
    if not posted:  # an older copy of the form, or a script: the main language
        return ""
    for tag in languages:
        if tag.lower() == posted.lower():
            return tag
    raise FormError(_("Please choose one of the languages offered."))


def read_form(
    values: Mapping[str, list[str]],
    extra_fields: Iterable[str],
    languages: Sequence[str] = (),
    gettext: Callable[[str], str] = str,
    topics: Sequence[str] = (),
) -> SignupForm:
    """Validate a posted form; FormError (its message through ``gettext``, the answering page's
    catalogue) for an address that cannot be one, a value longer than the form allows (the
    page's inputs say ``maxlength``: only a script sends more), a language that is not one of
    ``languages`` (the first is the newsletter's own) or a topic the settings do not offer. With
    ``topics`` offered, the ticked ones are kept as the reader's ``topics`` field (none ticked:
    none chosen)."""
    _ = gettext
    first = {key: clean_value(items[0] if items else "") for key, items in values.items()}
    raw = first.get("email", "")
    if not raw:
        raise FormError(_("Please enter your email address."))
    if any(len(value) > MAX_VALUE for value in first.values()):
        raise FormError(_("Each answer can be at most %(count)s characters long.") % {"count": MAX_VALUE})
    try:
        address = normalise_address(raw)
    except EmailNotValidError:
        raise FormError(_("That does not look like an email address; please check it.")) from None
    language = _language(first, languages, _)
    extras = tuple((field_key(label), first.get(field_key(label), "")) for label in extra_fields)
    if language:
        extras += ((LANGUAGE, language),)
    if topics:
        ticked = values.get("topic", [])
        if any(t not in topics for t in ticked):
            raise FormError(_("That topic is not one this newsletter offers; please choose from the list."))
        if len(set(ticked)) != len(ticked):  # as the preferences page: only a script repeats one
            raise FormError(_("Each topic can be chosen once."))
        extras += (("topics", topics_cell(t for t in topics if t in ticked)),)
    subscriber = Subscriber(email=address, name=first.get("name", ""), fields=extras)
    return SignupForm(subscriber, bot=bool(first.get(HONEYPOT)), language=language)


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
    languages: Sequence[tuple[str, str]] = (),
    chosen: str = "",
    topics: Sequence[str] = (),
) -> str:
    """The signup form: email, name, the extra fields, a language choice when ``languages`` (tag,
    name in itself) offers more than one, the topics offered (each ticked), and the hidden
    honeypot; its words through ``gettext`` (the page's catalogue, compose/i18n.py), English as
    written by default."""
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
    if len(languages) > 1:
        rows.append(_language_select(languages, chosen, _("Language")))
    if topics:
        rows.append(_topic_boxes(topics, _("Topics you receive")))
    rows.append(
        f'<p style="position:absolute;inset-inline-start:-9999px" aria-hidden="true"><label for="nl-{HONEYPOT}">'
        f'{html.escape(trap_label)}</label><input id="nl-{HONEYPOT}" name="{HONEYPOT}" type="text" tabindex="-1" '
        'autocomplete="off"></p>'
    )
    rows.append(f'<p><button type="submit">{html.escape(button)}</button></p>')
    return f'<form method="post" action="{html.escape(action)}">\n' + "\n".join(rows) + "\n</form>"


def _language_select(languages: Sequence[tuple[str, str]], chosen: str, label: str) -> str:
    """A select of the languages offered, each named in itself and marked with its own ``lang``
    so a screen reader pronounces ``Cymraeg`` as Welsh."""
    options = []
    for tag, name in languages:
        selected = " selected" if tag.lower() == chosen.lower() else ""
        options.append(
            f'<option value="{html.escape(tag)}" lang="{html.escape(tag)}"{selected}>{html.escape(name)}</option>'
        )
    return (
        f'<p><label for="nl-{LANGUAGE}">{html.escape(label)}</label><br>'
        f'<select id="nl-{LANGUAGE}" name="{LANGUAGE}">{"".join(options)}</select></p>'
    )


def _topic_boxes(topics: Sequence[str], legend: str) -> str:
    """The topics as ticked checkboxes in a fieldset, each label its own escaped text."""
    boxes = "".join(
        f'<label class="choice" for="nl-topic-{n}"><input type="checkbox" id="nl-topic-{n}" name="topic" '
        f'value="{html.escape(topic)}" checked><span dir="auto">{html.escape(topic)}</span></label>\n'
        for n, topic in enumerate(topics, 1)
    )
    return f"<fieldset>\n<legend>{html.escape(legend)}</legend>\n{boxes}</fieldset>"


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
