"""provenance.py, by property: against the messages a real send wrote (through a real SMTP
server, with VERP), no generated forgery ever suppresses anyone, and every genuine report built
from a message the tool really sent suppresses its recipient; mutated and nested reports never
raise and never suppress without a proof."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_workspace, run_send, settings_for
from newsletter_mailer.audience.bounce_log import BounceLog
from newsletter_mailer.audience.bounces import Action, Category, parse_report
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.provenance import Subject, message_ids
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.audience.verp import VerpCodec
from newsletter_mailer.store.sqlite import SQLiteStore
from smtp_servers import SMTPTestServer

REPORTS = Path(__file__).parent / "bounce_reports"
BOUNCES = "bounces@news.example.org"
PEOPLE = [f"user{i}@example.org" for i in range(6)]


@dataclass(frozen=True)
class Sent:
    """A workspace after a real send: each recipient's VERP sender and message headers."""

    root: Path
    sender: dict[str, str]
    headers: dict[str, str]
    message_id: dict[str, str]


def _sent(root: Path) -> Sent:
    with SMTPTestServer() as server:
        make_workspace(root, server.port, len(PEOPLE))
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(f'[bounces]\naddress = "{BOUNCES}"\n')
        run_send(root)
    messages = {m.rcpt_tos[0]: m for m in server.handler.messages}
    headers = {a: m.data.partition(b"\r\n\r\n")[0].replace(b"\r\n", b"\n").decode() for a, m in messages.items()}
    ids = {
        a: next(ln.split(" ", 1)[1] for ln in h.splitlines() if ln.startswith("Message-ID:"))
        for a, h in headers.items()
    }
    return Sent(root, {a: m.mail_from for a, m in messages.items()}, headers, ids)


@pytest.fixture(scope="module")
def forged_to(tmp_path_factory: pytest.TempPathFactory) -> Sent:
    return _sent(tmp_path_factory.mktemp("forged") / "ws")


@pytest.fixture(scope="module")
def genuine_to(tmp_path_factory: pytest.TempPathFactory) -> Sent:
    return _sent(tmp_path_factory.mktemp("genuine") / "ws")


def dsn(named: str, to: str, quoted: str, status: str, nonce: int) -> bytes:
    """Postfix's report naming ``named``, delivered to ``to``, quoting the headers ``quoted``."""
    text = (REPORTS / "postfix-user-unknown.eml").read_text().replace("gone@example.org", named)
    text = text.replace(f"To: {BOUNCES}", f"To: {to}").replace(f"Delivered-To: {BOUNCES}", f"Delivered-To: {to}")
    text = text.replace("Status: 5.1.1", f"Status: {status}").replace("550 5.1.1", f"550 {status}")
    start = text.index("Return-Path: <bounces@news.example.org>\nFrom: Test List")
    end = text.index("\n--4Tq9vX1Zk3z9sQ.1717492351/mail.news.example.org--")
    return (text[:start] + quoted + f"\nX-Nonce: {nonce}\n" + text[end:]).encode()


def arf(named: str, to: str, quoted: str, nonce: int) -> bytes:
    """A feedback-loop complaint naming ``named`` (nobody if empty), quoting ``quoted``."""
    text = (REPORTS / "arf-complaint.eml").read_text().replace("To: abuse@news.example.org", f"To: {to}")
    text = text.replace("Original-Rcpt-To: <annoyed@example.org>\n", f"Original-Rcpt-To: <{named}>\n" if named else "")
    start = text.index("Return-Path: <bounces@news.example.org>\nFrom: Test List")
    end = text.index("\n--part1_13d.2e68ed54_boundary--")
    return (text[:start] + quoted + f"\nX-Nonce: {nonce}\n" + text[end:]).encode()


def fake_headers(named: str, message_id: str, return_path: str) -> str:
    return (
        f"Return-Path: <{return_path}>\nFrom: Test List <news@example.org>\nTo: <{named}>\n"
        f"Subject: Hello\nMessage-ID: {message_id}"
    )


EXAMPLES = itertools.count()
TOKENS = st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=8, max_size=30)


@st.composite
def forgery(draw: st.DrawFn, sent: Sent) -> bytes:
    """A report naming a reader with no proof bound to that reader: the public address, a token
    that is random, altered or another reader's, a Message-ID random or another reader's."""
    target = draw(st.sampled_from(PEOPLE))
    other = draw(st.sampled_from([p for p in PEOPLE if p != target]))
    real_token = sent.sender[target].partition("+")[2].partition("@")[0]
    to = draw(
        st.sampled_from(
            [
                BOUNCES,
                f"bounces+{draw(TOKENS)}@news.example.org",
                f"bounces+{real_token[:-2]}{'aa' if not real_token.endswith('aa') else 'bb'}@news.example.org",
                sent.sender[other],
                sent.sender[target].replace("news.example.org", "evil.example"),
            ]
        )
    )
    message_id = draw(
        st.sampled_from(
            [
                f"<{draw(st.text('0123456789abcdef', min_size=30, max_size=30))}@news.example.org>",
                sent.message_id[other],
                sent.message_id[target].replace("@", ".x@"),
            ]
        )
    )
    quoted = draw(st.sampled_from([fake_headers(target, message_id, to), sent.headers[other]]))
    named = draw(st.sampled_from([target, target.upper(), f"{target.partition('@')[0]}@EXAMPLE.ORG"]))
    nonce = draw(st.integers(0, 2**62))
    if draw(st.booleans()):
        return arf(named, draw(st.sampled_from([BOUNCES, to])), quoted, nonce)
    return dsn(named, to, quoted, draw(st.sampled_from(["5.1.1", "5.2.1", "5.2.2", "4.2.2"])), nonce)


@st.composite
def genuine(draw: st.DrawFn, sent: Sent) -> tuple[str, bytes]:
    """A report about a message the tool really sent: to its VERP sender, or quoting its headers, or both."""
    target = draw(st.sampled_from(PEOPLE))
    proof = draw(st.sampled_from(["verp", "message-id", "both"]))
    to = sent.sender[target] if proof != "message-id" else BOUNCES
    quoted = sent.headers[target] if proof != "verp" else fake_headers(target, "<elsewhere@example.net>", BOUNCES)
    named = draw(st.sampled_from([target, target.upper()]))
    nonce = draw(st.integers(0, 2**62))
    if proof != "verp" and draw(st.booleans()):
        return target, arf(draw(st.sampled_from([named, ""])), BOUNCES, quoted, nonce)
    return target, dsn(named, to, quoted, draw(st.sampled_from(["5.1.1", "5.1.10", "5.2.1"])), nonce)


def open_log(sent: Sent) -> tuple[SQLiteStore, BounceLog]:
    db = SQLiteStore.open(settings_for(sent.root).database_path)
    verp = VerpCodec.from_signer(signer_for(settings_for(sent.root)), BOUNCES)
    return db, BounceLog(db, verp=verp)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_forged_report_ever_suppresses_anyone(forged_to: Sent, data: st.DataObject) -> None:
    report = data.draw(forgery(forged_to))
    db, log = open_log(forged_to)
    with db:
        outcome = log.process("forged", report)
        assert outcome.action not in (Action.SUPPRESSED, Action.COUNTED), outcome
        assert all(SuppressionList(db).get(p) is None for p in PEOPLE)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_genuine_report_suppresses_its_recipient(genuine_to: Sent, data: st.DataObject) -> None:
    target, report = data.draw(genuine(genuine_to))
    # The workspace is shared by every example, and two examples may draw the same bytes: a
    # report seen before is rightly a duplicate, so each example's report is made its own.
    report = f"X-Example: {next(EXAMPLES)}\n".encode() + report
    db, log = open_log(genuine_to)
    with db:
        outcome = log.process("genuine", report)
        assert (outcome.address, outcome.action) == (target, Action.SUPPRESSED), outcome
        assert SuppressionList(db).get(target) is not None


def mutate(data: bytes, seed: int, depth: int, charset: str) -> bytes:
    """Flip, drop and repeat bytes, nest the report ``depth`` deep, and give it a charset."""
    rng = random.Random(seed)
    raw = bytearray(data)
    for _ in range(rng.randrange(0, 12)):
        at = rng.randrange(len(raw))
        choice = rng.randrange(3)
        if choice == 0:
            raw[at] = rng.randrange(256)
        elif choice == 1:
            del raw[at : at + rng.randrange(1, 40)]
        else:
            raw[at:at] = raw[at : at + rng.randrange(1, 200)]
    body = bytes(raw).replace(b"charset=us-ascii", f'charset="{charset}"'.encode(errors="surrogateescape"), 1)
    nest = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n' % (i, i) for i in range(depth))
    return (b"Subject: x\n" + nest + body) if depth else body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(p.name for p in REPORTS.glob("*.eml"))),
    seed=st.integers(0, 2**32),
    depth=st.sampled_from([0, 0, 1, 3, 39, 41, 300, 5000]),
    charset=st.sampled_from(["us-ascii", "x-bogus", "utf-8\0", "utf-7", "base64", "rot13", "'", "utf-8''x", ""]),
)
def test_mutated_and_nested_reports_never_raise_and_never_suppress_unproven(
    forged_to: Sent, name: str, seed: int, depth: int, charset: str
) -> None:
    data = mutate((REPORTS / name).read_bytes().replace(b"gone@example.org", PEOPLE[0].encode()), seed, depth, charset)
    report = parse_report(data)  # never raises
    assert depth <= 40 or report.category is Category.UNREADABLE
    db, log = open_log(forged_to)
    with db:
        outcome = log.process("mutated", data)
        assert outcome.action is not Action.SUPPRESSED
        assert all(SuppressionList(db).get(p) is None for p in PEOPLE)


def test_message_ids_are_bounded_and_never_carry_control_characters() -> None:
    text = "".join(f"<id{n}@news.example.org> " for n in range(100)) + "<nul\x00@x.org> <a b@x.org>"
    found = message_ids(text)
    assert len(found) == 20 and found[0] == "<id0@news.example.org>"
    assert not any("\x00" in f or " " in f for f in found)
    assert Subject().verified is False and Subject("a@x.org", "i", "verp").verified
