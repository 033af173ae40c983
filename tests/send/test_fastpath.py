"""fastpath.py: aiosmtplib's DATA fast path is on with the pinned aiosmtplib, returns exactly
what aiosmtplib's own code returns, is never installed by an import, and stays off (with the
tool still working, byte for byte) when aiosmtplib is not the code it was written against."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiosmtplib.email
import aiosmtplib.protocol
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_workspace, run_send, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.envelope import Envelope
from newsletter_mailer.compose.wire import WireReady
from newsletter_mailer.send import fastpath
from newsletter_mailer.send.transport import Kind, SMTPTransport
from smtp_servers import SMTPTestServer

ORIGINAL_NORMALIZE = getattr(aiosmtplib.protocol, "normalize_message_line_endings", None)
ORIGINAL_PERIOD = aiosmtplib.protocol.PERIOD_REGEX
ORIGINAL_QUOTE = aiosmtplib.email.quote_address  # the module's own; the fast path swaps aiosmtplib.smtp's
# The versions pyproject.toml pins for the fast path; with an older aiosmtplib (allowed, and
# tested by the tests below that need no fast path) these tests have nothing to compare against.
pinned = pytest.mark.skipif(
    ORIGINAL_NORMALIZE is None, reason=f"aiosmtplib {aiosmtplib.__version__} predates the fast path's target (5.1.3)"
)
SAMPLES = [
    b"a\r\nb\r\n",
    b"a\nb\n",
    b"a\rb",
    b"a\r\n.b\r\n",
    b".start\r\n",
    b"x\r\r\n",
    b"no end",
    b"",
    b"mixed\r\nlone\nlone\r.dot\r\n",
    b"\r\n.\r\n..\r\n",
    b"tail.\r\n",
    b"a\n.b",
]


@pytest.fixture
def fast_path_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An aiosmtplib the fast path was not tested with: its sources match no known digest."""
    fastpath.uninstall()
    monkeypatch.setattr(fastpath, "KNOWN_SOURCES", frozenset())
    yield
    fastpath.uninstall()


@pinned
def test_a_message_checked_when_built_is_passed_through_untouched() -> None:
    assert ORIGINAL_NORMALIZE is not None
    ready = WireReady(b"From: a\r\n\r\nbody\r\n=2Edot\r\n")
    assert fastpath._FastNormalize(ORIGINAL_NORMALIZE)(ready) is ready
    assert fastpath._FastPeriod(ORIGINAL_PERIOD).sub(b"..", ready) is ready
    assert ORIGINAL_PERIOD.sub(b"..", ORIGINAL_NORMALIZE(ready)) == ready  # what aiosmtplib would send


@pinned
@pytest.mark.parametrize("message", SAMPLES)
def test_fast_functions_return_what_aiosmtplib_returns(message: bytes) -> None:
    assert ORIGINAL_NORMALIZE is not None
    normalize = fastpath._FastNormalize(ORIGINAL_NORMALIZE)
    assert normalize(message) == ORIGINAL_NORMALIZE(message)
    normalised = ORIGINAL_NORMALIZE(message)
    assert fastpath._FastPeriod(ORIGINAL_PERIOD).sub(b"..", normalised) == ORIGINAL_PERIOD.sub(b"..", normalised)


def test_importing_the_package_changes_nothing_in_aiosmtplib() -> None:
    script = (
        "import aiosmtplib.protocol as p; before = (getattr(p, 'normalize_message_line_endings', 0), p.PERIOD_REGEX)\n"
        "import newsletter_mailer.cli, newsletter_mailer.send.campaign, newsletter_mailer.send.engine\n"
        "import newsletter_mailer.send.transport\n"
        "assert (getattr(p, 'normalize_message_line_endings', 0), p.PERIOD_REGEX) == before, 'changed on import'\n"
        "import newsletter_mailer.send.fastpath as f; assert not f.state().active"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pinned
def test_the_fast_path_is_in_use_with_the_pinned_aiosmtplib(tmp_path: Path) -> None:
    fastpath.uninstall()
    assert aiosmtplib.protocol.normalize_message_line_endings is ORIGINAL_NORMALIZE
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        run_send(root)
        state = fastpath.state()
        assert state.active, state.reason
        # What execute_data_command will look up when it runs: our functions, not aiosmtplib's.
        names = aiosmtplib.protocol.SMTPProtocol.execute_data_command.__globals__
        assert isinstance(names["normalize_message_line_endings"], fastpath._FastNormalize)
        assert isinstance(names["PERIOD_REGEX"], fastpath._FastPeriod)
    assert len(server.handler.messages) == 3
    fastpath.uninstall()
    assert aiosmtplib.protocol.normalize_message_line_endings is ORIGINAL_NORMALIZE
    assert aiosmtplib.protocol.PERIOD_REGEX is ORIGINAL_PERIOD


def _envelopes(root: Path) -> list[Envelope]:
    with open_campaign(root / "issue.md", settings_for(root)) as campaign:
        template = campaign.template()
        built = [template.envelope(Subscriber(f"user{i}@example.org", f"Ann  {i} .")) for i in range(3)]
    odd = b"From: a@example.org\r\nSubject: x\r\n\r\n.leading dot\r\nlone\nlone\rcr\r\n..\r\n.\r\nend"
    return [*built, Envelope("news@example.org", "odd@example.org", odd, "<odd@example.org>")]


async def _deliver(transport: SMTPTransport, envelopes: list[Envelope]) -> None:
    connection = transport.connection()
    try:
        for envelope in envelopes:
            assert (await connection.send(envelope)).kind is Kind.SENT
    finally:
        await connection.close()


def _received_on_and_off(tmp_path: Path, fast: bool) -> tuple[list[bytes], list[Envelope]]:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / f"ws-{fast}", server.port, 1)
        envelopes = _envelopes(root)
        transport = SMTPTransport(settings_for(root).smtp, fast_path=fast)
        assert fastpath.state().active is fast
        asyncio.run(_deliver(transport, envelopes))
    return [m.data for m in server.handler.messages], envelopes


@pinned
def test_same_bytes_arrive_with_the_fast_path_on_and_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on, envelopes = _received_on_and_off(tmp_path, True)
    fastpath.uninstall()
    off, _ = _received_on_and_off(tmp_path, False)
    assert on[:3] == [e.data for e in envelopes[:3]]  # our envelopes arrive exactly as built
    assert (
        on[3]
        == off[3]
        == b"From: a@example.org\r\nSubject: x\r\n\r\n.leading dot\r\nlone\r\nlone\r\ncr\r\n..\r\n.\r\nend\r\n"
    )
    assert len(off) == 4 and [len(m) for m in on] == [len(m) for m in off]


def test_the_tool_works_with_the_fast_path_off(tmp_path: Path, fast_path_off: None) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 5)
        _, summary = run_send(root)
        state = fastpath.state()
        assert not state.active and state.reason
        assert getattr(aiosmtplib.protocol, "normalize_message_line_endings", None) is ORIGINAL_NORMALIZE
        assert summary.sent == 5
        envelopes = _envelopes(root)[:3]
        asyncio.run(_deliver(SMTPTransport(settings_for(root).smtp), envelopes))
    assert sorted(m.rcpt_tos[0] for m in server.handler.messages[:5]) == [f"user{i}@example.org" for i in range(5)]
    assert [m.data for m in server.handler.messages[5:]] == [e.data for e in envelopes]


@pinned
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("delete normalize", "has no normalize_message_line_endings"),
        ("other period pattern", "not the dot-stuffing pattern"),
        ("execute_data_command without them", "no longer uses"),
    ],
)
def test_an_aiosmtplib_that_differs_leaves_the_fast_path_off(
    monkeypatch: pytest.MonkeyPatch, change: str, reason: str
) -> None:
    """As with aiosmtplib before 5.1.3, which has no normalize_message_line_endings: importing and
    creating a transport work, and aiosmtplib's own code runs."""
    fastpath.uninstall()
    if change == "delete normalize":
        monkeypatch.delattr(aiosmtplib.protocol, "normalize_message_line_endings")
    elif change == "other period pattern":
        monkeypatch.setattr(aiosmtplib.protocol, "PERIOD_REGEX", __import__("re").compile(rb"^\."))
    else:

        async def execute_data_command(self: object, message: bytes, timeout: float | None = None) -> object:
            raise NotImplementedError

        monkeypatch.setattr(aiosmtplib.protocol.SMTPProtocol, "execute_data_command", execute_data_command)
    from newsletter_mailer.config import SMTPSettings

    SMTPTransport(SMTPSettings(host="127.0.0.1"))
    state = fastpath.state()
    assert not state.active and reason in state.reason
    assert not isinstance(getattr(aiosmtplib.protocol, "normalize_message_line_endings", None), fastpath._FastNormalize)


ADDRESSES = [
    "ann@example.org",
    "bounces+k2v7q3x9a1@news.example.org",
    "o'neil.{x}|y=z@sub-1.example.org",
    "a..b@example.org",
    ".a@example.org",
    "a@-x.org",
    "Ann <ann@example.org>",
    '"quoted local"@example.org',
    "zoë@example.org",
    "a@b@c.org",
    "ann@example.org\r\nRCPT TO:<x@y.org>",
    "a b@example.org",
    "",
    "ann@[127.0.0.1]",
]


def _quote_outcome(quote: Callable[[str], str], address: str) -> str:
    try:
        return quote(address)
    except ValueError as exc:
        return f"ValueError: {exc}"


@pinned
@pytest.mark.parametrize("address", ADDRESSES)
def test_the_fast_quote_is_aiosmtplibs_quote(address: str) -> None:
    fast = fastpath._FastQuote(ORIGINAL_QUOTE)
    assert _quote_outcome(fast, address) == _quote_outcome(ORIGINAL_QUOTE, address)


@pinned
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.emails().map(str),
        st.text(alphabet=st.sampled_from("ab.@+-'\"<> \r\n{}é[]()"), max_size=30),
    )
)
def test_the_fast_quote_agrees_on_generated_addresses(address: str) -> None:
    fast = fastpath._FastQuote(ORIGINAL_QUOTE)
    assert _quote_outcome(fast, address) == _quote_outcome(ORIGINAL_QUOTE, address)
