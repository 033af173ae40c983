"""wire.py: a message marked WireReady is one that aiosmtplib's two passes (line endings to CRLF,
dot-stuffing) would leave exactly as it is; a value that would need either is never marked."""

from __future__ import annotations

import re
from pathlib import Path

import aiosmtplib.protocol
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import make_workspace
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import DkimSigner, generate_key, parse_key
from newsletter_mailer.compose.envelope import MessageTemplate
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.compose.wire import WirePlan, WireReady, _paired, on_the_wire_as_is
from newsletter_mailer.config import load_settings

# aiosmtplib's own passes, from its untouched module globals (the fast path swaps the functions,
# not these patterns).
LINE_ENDINGS = aiosmtplib.protocol.LINE_ENDINGS_REGEX
PERIOD = re.compile(rb"(?m)^\.")


def unchanged_on_the_wire(data: bytes) -> bool:
    normalized = LINE_ENDINGS.sub(b"\r\n", data)
    if not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    return PERIOD.sub(b"..", normalized) == data


ISSUE = (
    "---\nsubject: Hi {{ subscriber.name }}\n---\n{{ subscriber.name }}\n\n"
    "Dear {{ subscriber.name }},{{ subscriber.city }}\n\n## News\n\n{{ subscriber.city }}\n\n"
    "Something [happened](https://example.org/n).\n"
)
HOSTILE = [
    "",
    ".",
    ".leading dot",
    "dot\n.after a newline",
    "bare\rreturn",
    "bare\nfeed",
    "\r\n.\r\n",
    "x" * 300,
    "é. " * 40,
    "=2E",
    "日本語",
]


def template(tmp_path: Path, signed: bool) -> MessageTemplate:
    root = make_workspace(tmp_path / "ws", 1, 1)
    (root / "issue.md").write_text(ISSUE, encoding="utf-8")
    config = load_settings(workspace=root)
    dkim = DkimSigner([parse_key(generate_key("sel", "example.org").private_pem, "sel", "example.org")])
    rendered = render_issue(read_issue(root / "issue.md"), config)
    return MessageTemplate(rendered, config, signer_for(config), dkim=dkim if signed else None)


@pytest.mark.parametrize("signed", [False, True])
def test_real_messages_with_hostile_values_are_marked_and_need_nothing(tmp_path: Path, signed: bool) -> None:
    made = template(tmp_path, signed)
    for name in HOSTILE:
        for city in ("", ".", " Riverton\n.", "Zürich" * 30):
            data = made.envelope(Subscriber("zoë@example.org", name, (("city", city),))).data
            assert isinstance(data, WireReady), (name, city)  # our encoders leave nothing to repair
            assert unchanged_on_the_wire(data), (name, city)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(name=st.text(max_size=80), city=st.text(max_size=80))
def test_any_marked_message_is_what_aiosmtplib_would_send(tmp_path: Path, name: str, city: str) -> None:
    data = template(tmp_path, False).envelope(Subscriber("a@example.org", name, (("city", city),))).data
    assert not isinstance(data, WireReady) or unchanged_on_the_wire(data)


LITERALS = [b"Subject: x\r\n\r\n", b"=\r\n", b"\r\n"]


@pytest.mark.parametrize(
    ("values", "prefix", "marked"),
    [
        ((b"plain", b"text"), b"", True),
        ((b"a\r\nb", b""), b"", True),
        ((b".dot", b"x"), b"", False),  # the first value starts a line
        ((b"x", b".dot"), b"", False),  # so does the second, after a soft break
        ((b"a\nb", b"x"), b"", False),  # a bare line feed
        ((b"a\r", b"x"), b"", False),  # a carriage return that the next literal cannot complete
        ((b"x", b"a\r\n.b"), b"", False),  # a line inside a value starting with a period
        ((b"x", b"y"), b"DKIM-Signature: a\r\n\tb\r\n", True),
        ((b"x", b"y"), b"DKIM-Signature: a\n", False),
        ((b"x", b"y"), b".X: a\r\n", False),
    ],
)
def test_the_plan_checks_values_and_their_edges(values: tuple[bytes, bytes], prefix: bytes, marked: bool) -> None:
    pieces = [LITERALS[0], values[0], LITERALS[1], values[1], LITERALS[2]]
    assert WirePlan(LITERALS).fits(pieces, prefix) is marked
    whole = prefix + b"".join(pieces)
    assert on_the_wire_as_is(whole) is unchanged_on_the_wire(whole)  # the two checks agree
    if marked:
        assert unchanged_on_the_wire(whole)


@pytest.mark.parametrize(
    "literals",
    [[b".From: x\r\n", b"\r\n"], [b"From: x\r\n", b"no end"], [b"From: x\n", b"\r\n"], [b"A\r\n", b".\r\n"]],
)
def test_literals_that_would_need_repair_mark_nothing(literals: list[bytes]) -> None:
    plan = WirePlan(literals)
    pieces = [literals[0], b"v", literals[1]]
    assert not plan.fits(pieces) or unchanged_on_the_wire(b"".join(pieces))
    assert plan.fits(pieces) is on_the_wire_as_is(b"".join(pieces))


def per_value(plan_literals: list[bytes], pieces: list[bytes]) -> bool:
    """The check value by value, as it was written before fits() looked at them all at once."""
    line_start = [literal.endswith(b"\n") for literal in plan_literals[:-1]]
    dot_after = [literal.startswith(b".") for literal in plan_literals[1:]]
    for value, start, dot in zip(pieces[1::2], line_start, dot_after, strict=True):
        if not _paired(value) or (start and value.startswith(b".")):
            return False
        if dot and (value.endswith(b"\n") or (not value and start)):
            return False
    return True


EDGY = st.binary(max_size=8).map(lambda b: bytes(b"\r\n.x\0"[c % 5] for c in b))
EDGY_LITERALS = [b"H: v\r\n\r\n", b".x\r\n", b"\r\n", b"=\r\n", b"y\r\n"]


@settings(max_examples=500, deadline=None)
@given(values=st.lists(EDGY, min_size=4, max_size=4))
@example(values=[b"x\r", b"\ny", b"", b"z"])  # a CR ending one value and an LF starting the next
@example(values=[b"x\n", b".y", b"", b"z"])
def test_looking_at_all_values_at_once_decides_as_value_by_value(values: list[bytes]) -> None:
    pieces = [EDGY_LITERALS[0]]
    for value, literal in zip(values, EDGY_LITERALS[1:], strict=True):
        pieces += [value, literal]
    plan = WirePlan(EDGY_LITERALS)
    assert plan.fits(pieces) is per_value(EDGY_LITERALS, pieces)
    if plan.fits(pieces):
        assert unchanged_on_the_wire(b"".join(pieces))
