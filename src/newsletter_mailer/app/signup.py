"""Signing up (double opt-in), as the signup pages run it: a request recorded within the limits,
the confirmation mail delivered, a pending request looked up, a request confirmed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..audience.signup import RequestRef, SignupForm, mailbox_key
from ..audience.signup_log import PendingSignup, SignupLog
from ..compose.envelope import Envelope
from ..config import Settings
from ..send.providers import transport_for
from ..send.route import delivery_route
from ..send.transport import Kind, Result, Transport
from .stores import opened_store

__all__ = ["confirm_signup", "pending_signup", "request_signup", "send_confirmation"]

log = logging.getLogger("newsletter_mailer.signup")


def request_signup(settings: Settings, form: SignupForm, ip: str) -> PendingSignup | None:
    """Record a signup request; None when a limit (per address, per IP) says no mail goes out."""
    signup = settings.signup
    with opened_store(settings) as store:
        signups = SignupLog(store)
        allowed = signups.may_mail(
            mailbox_key(form.subscriber.email),  # plus-tags and ignored dots count as one mailbox
            ip,
            per_address_per_day=signup.per_address_per_day,
            per_ip_per_hour=signup.per_ip_per_hour,
        )
        if not allowed:
            return None
        signups.expire(time.time() - signup.confirm_hours * 3600)
        return signups.request(form.subscriber, ip, signup.wording_version)


def pending_signup(settings: Settings, ref: RequestRef) -> PendingSignup | None:
    with opened_store(settings) as store:
        return SignupLog(store).pending(ref)


def confirm_signup(settings: Settings, ref: RequestRef, ip: str) -> PendingSignup | None:
    """Confirm a pending request; returns it (its address, the language chosen), or None when
    there is no such request."""
    with opened_store(settings) as store:
        signups = SignupLog(store)
        pending = signups.pending(ref)
        if pending is None or signups.confirm(ref, ip) is None:
            return None
        return pending


def send_confirmation(settings: Settings, envelope: Envelope, mask: Callable[[str], str]) -> None:
    """Deliver one confirmation mail through the relay (or provider API) or the local outbox (in a
    worker thread);
    a refusal, or an address this relay cannot carry (no SMTPUTF8), is logged, never raised."""

    async def deliver(transport: Transport) -> Result:
        connection = transport.connection()
        try:
            return await connection.send(envelope)
        finally:
            await connection.close()

    try:
        with delivery_route(settings) as route:
            outcome = asyncio.run(deliver(transport_for(settings, route.smtp)))
    except Exception as exc:  # the visitor has their page; the operator gets the log line
        log.warning("confirmation mail could not be sent: %s", exc)
        return
    if outcome.kind is Kind.SENT:
        log.info("confirmation mail: %s", outcome)
    else:
        log.warning("confirmation mail to %s: %s", mask(envelope.recipient), outcome)
