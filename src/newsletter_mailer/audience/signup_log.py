"""Signups in the store: requests waiting for their confirmation link, confirmed signups with
their consent record, and the log of confirmation mails the rate limits read. The rows live in
either store (rows.py); the rules are here.

A request is kept apart from the confirmed signup, so a stranger who types someone's address
into the form can change nothing about that person until the link in their inbox is used.
"""

from __future__ import annotations

import csv
import itertools
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from ..store.base import Store
from ..store.journal import fields_of
from ..store.rows import PreferenceRow, SignupMail, SignupRequest, SignupRow
from .choices import TOPICS, ReaderChoices
from .signup import RequestRef, Tally, field_key, merge_lists
from .subscribers import Subscriber, address_key
from .suppressions import SuppressionList

__all__ = [
    "CONSENT_COLUMNS",
    "PREFERENCE_COLUMNS",
    "Consent",
    "PendingSignup",
    "SignupLog",
    "confirmed_signups",
    "export_list",
]

MAIL_LOG_DAYS = 7  # the longest window a limit reads, and then some


@dataclass(frozen=True)
class PendingSignup:
    id: int
    address: str
    requested: float
    nonce: str = ""
    language: str = ""  # chosen on the form, kept in the request's fields (as configured then)

    @property
    def ref(self) -> RequestRef:
        """What its confirmation link names."""
        return RequestRef(self.id, int(self.requested), self.nonce, self.address if self.nonce else "")


@dataclass(frozen=True)
class Consent:
    """A confirmed signup: who, and the record of their consent."""

    subscriber: Subscriber
    requested: float
    request_ip: str
    confirmed: float
    confirm_ip: str
    wording: str


class SignupLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def may_mail(self, address: str, ip: str, *, per_address_per_day: int, per_ip_per_hour: int) -> bool:
        """Whether another confirmation mail may go out; if so it is counted now. Counting and
        logging are one exclusive step, so processes serving the form together keep the limits."""
        now = time.time()
        with self.store.exclusive():
            to_address = self.store.count_signup_mails(now - 86400, address=address)
            from_ip = self.store.count_signup_mails(now - 3600, ip=ip)
            if to_address >= per_address_per_day or from_ip >= per_ip_per_hour:
                return False
            self.store.add_signup_mail(SignupMail(address, ip, now))
            self.store.forget_signup_mails(now - MAIL_LOG_DAYS * 86400)
        return True

    def request(self, subscriber: Subscriber, ip: str, wording: str) -> PendingSignup:
        now = time.time()
        fields = json.dumps(subscriber.fields, ensure_ascii=False) if subscriber.fields else ""
        nonce = secrets.token_hex(8)
        number = self.store.add_signup_request(
            SignupRequest(0, subscriber.email, subscriber.name, fields, now, ip, wording, nonce)
        )
        return PendingSignup(number, subscriber.email, now, nonce, dict(subscriber.fields).get("language", ""))

    def _request(self, ref: RequestRef) -> SignupRequest | None:
        """The request a link names: its number, the second it was made, its nonce and its address
        must all match (a number alone could name another person's request). A link from before
        nonces names only a request from before them."""
        found = self.store.get_signup_request(ref.id)
        if found is None or int(found.requested) != ref.requested:
            return None
        if not secrets.compare_digest(found.nonce.encode(), ref.nonce.encode()):
            return None
        return found if not found.nonce or address_key(found.address) == address_key(ref.address) else None

    def pending(self, ref: RequestRef) -> PendingSignup | None:
        found = self._request(ref)
        if found is None:
            return None
        language = dict(fields_of(found.fields)).get("language", "")
        return PendingSignup(found.id, found.address, found.requested, found.nonce, language)

    def confirm(self, ref: RequestRef, ip: str) -> str | None:
        """Turn a request into a signup (and lift any suppression: the link proves the mailbox
        works and the person wants the mail), all in one transaction. Returns the address, or
        None if the link was already used."""
        with self.store.exclusive():
            found = self._request(ref)
            if found is None:
                return None
            signup = SignupRow(
                found.address, found.name, found.fields, found.requested, found.ip, time.time(), ip, found.wording
            )
            self.store.add_signup(signup, replace=True)
            self.store.delete_signup_requests(found.address)
            SuppressionList(self.store).remove(found.address, "signed up again and confirmed")
        return found.address

    def confirmed(self) -> list[Consent]:
        return [
            Consent(
                Subscriber(r.address, r.name, fields_of(r.fields)),
                r.requested,
                r.request_ip,
                r.confirmed,
                r.confirm_ip,
                r.wording,
            )
            for r in self.store.iter_signups()
        ]

    def expire(self, older_than: float) -> int:
        """Forget requests never confirmed (they hold an address someone typed, nothing more)."""
        return self.store.expire_signup_requests(older_than)


CONSENT_COLUMNS = ("source", "requested", "request_ip", "confirmed", "confirm_ip", "wording_version")


def _cell(value: str) -> str:
    """A value safe in a spreadsheet: one that would start a formula is prefixed with '."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


PREFERENCE_COLUMNS = ("paused_until", "preferences_changed", "preferences_ip")


def export_list(
    store: Store,
    csv_rows: Iterable[Subscriber],
    out: TextIO,
    extra: Iterable[str],
    choices: ReaderChoices | None = None,
) -> int:
    """Write the effective list (the CSV plus confirmed signups, minus suppressions) with the
    consent record of each signup; with ``choices`` ([preferences]), each reader's topics as a
    send applies them and their pause with the record of their last change. Returns the number
    of rows written."""
    consents = {address_key(c.subscriber.email): c for c in SignupLog(store).confirmed()}
    suppressed = SuppressionList(store)
    rows = iter(merge_lists(csv_rows, [c.subscriber for c in consents.values()], Tally()))
    first = next(rows, None)
    keys = list(dict.fromkeys([*(k for k, _ in (first.fields if first else ())), *map(field_key, extra)]))
    if choices is not None and TOPICS not in keys:
        keys.append(TOPICS)
    changes = {address_key(r.address): r for r in store.current_preferences()} if choices is not None else {}
    writer = csv.writer(out)
    writer.writerow(["email", "name", *keys, *CONSENT_COLUMNS, *(PREFERENCE_COLUMNS if choices else ())])
    written = 0
    for listed in itertools.chain([first] if first else [], rows):
        if listed.email in suppressed:
            continue
        subscriber = choices.reader(listed) if choices is not None else listed
        values = dict(subscriber.fields)
        consent = consents.get(address_key(subscriber.email))
        record = ["csv", "", "", "", "", ""]
        if consent is not None:
            record = [
                "signup" if consent.subscriber is listed else "csv+signup",
                _stamp(consent.requested),
                consent.request_ip,
                _stamp(consent.confirmed),
                consent.confirm_ip,
                consent.wording,
            ]
        cells = [subscriber.email, subscriber.name, *(values.get(k, "") for k in keys), *record]
        if choices is not None:
            cells += _preference_record(changes.get(address_key(subscriber.email)), choices.now)
        writer.writerow([_cell(c) for c in cells])
        written += 1
    return written


def confirmed_signups(store: Store) -> list[Subscriber]:
    """Confirmed signups, part of the list at send time."""
    return [signup.subscriber for signup in SignupLog(store).confirmed()]


def _preference_record(change: PreferenceRow | None, now: float) -> list[str]:
    """A reader's pause (while it lasts) and when and from where they last changed their choice."""
    if change is None:
        return ["", "", ""]
    paused = _stamp(change.paused_until) if change.paused_until > now else ""
    return [paused, _stamp(change.chosen), change.ip]
