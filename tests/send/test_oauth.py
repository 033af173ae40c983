"""oauth.py: XOAUTH2 logins with a token from the user's token command, against a real token
endpoint and a real relay on loopback: the token is fetched once and shared, fetched again when
it expires or the relay refuses it, and never shown; a failing command is one line; a relay that
refuses passwords names the code and the fix."""

from __future__ import annotations

import asyncio
import base64
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import free_port, make_workspace
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.config import SMTPSettings, load_settings
from newsletter_mailer.errors import ConfigError, SMTPStartError
from newsletter_mailer.send.oauth import parse_token_output, xoauth2_initial_response
from newsletter_mailer.send.transport import SMTPTransport
from smtp_servers import RecordingHandler
from stand_ins.oauth_server import OAuthRelay, TokenEndpoint, TokenIssuer

USER = "news@example.org"
SECRET = "client-secret-from-the-environment"
SCRIPT = Path(__file__).resolve().parents[1] / "stand_ins" / "token_command.py"


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> TokenIssuer:
    monkeypatch.setenv("TEST_OAUTH_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("TEST_OAUTH_REFRESH_TOKEN", "refresh-1")
    return TokenIssuer(client_secret=SECRET, refresh_token="refresh-1")


@pytest.fixture
def endpoint(issuer: TokenIssuer) -> Iterator[str]:
    with TokenEndpoint(issuer) as url:
        yield url


def command(url: str, grant: str = "client_credentials") -> str:
    return shlex.join([sys.executable, str(SCRIPT), url, grant])


def smtp(port: int, token_command: str, **extra: Any) -> SMTPSettings:
    return SMTPSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        username=USER,
        auth="xoauth2",
        token_command=token_command,
        **extra,
    )


def test_initial_response_is_the_documented_sasl_string() -> None:
    # Google's XOAUTH2 page: base64("user=" {User} "^Aauth=Bearer " {Access Token} "^A^A").
    assert base64.b64decode(
        xoauth2_initial_response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    ) == (b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01")


def test_a_send_logs_in_with_one_token_shared_by_every_connection(
    tmp_path: Path, issuer: TokenIssuer, endpoint: str
) -> None:
    with OAuthRelay(issuer, USER) as relay:
        root = make_workspace(
            tmp_path / "ws",
            relay.port,
            6,
            smtp_extra=f'auth = "xoauth2"\nusername = "{USER}"\ntoken_command = {command(endpoint)!r}\n'
            "concurrency = 3\nmessages_per_connection = 1",
        )
        with open_campaign(root / "issue.md", load_settings(workspace=root)) as campaign:
            summary = campaign.run()
    assert summary.sent == 6 and len(relay.handler.messages) == 6
    assert issuer.requests == 1  # one token for the probe and every (re)connection
    assert len(relay.handler.logins) == 7 and all(ok for _, ok in relay.handler.logins)
    token = next(iter(issuer.issued))
    for path in root.rglob("*"):  # the token is in no file of the workspace (journal, state, outbox)
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_an_expired_token_is_fetched_again_with_the_refresh_grant(issuer: TokenIssuer, endpoint: str) -> None:
    issuer.lifetime = 3.0  # long enough for two logins on a loaded machine
    with OAuthRelay(issuer, USER) as relay:
        transport = SMTPTransport(smtp(relay.port, command(endpoint, "refresh_token")))

        async def twice() -> None:
            await transport.probe()
            await transport.probe()  # still fresh: no new token
            await asyncio.sleep(3.2)  # expired (the token is dropped 0.3 s before its end)
            await transport.probe()

        asyncio.run(twice())
    assert issuer.requests == 2 and transport.tokens is not None and transport.tokens.runs == 2
    assert [ok for _, ok in relay.handler.logins] == [True, True, True]
    assert relay.handler.logins[1][0] != relay.handler.logins[2][0]


def test_a_refused_token_gets_the_error_challenge_and_one_new_token(issuer: TokenIssuer, endpoint: str) -> None:
    with OAuthRelay(issuer, USER) as relay:
        transport = SMTPTransport(smtp(relay.port, command(endpoint)))

        async def revoked_between() -> None:
            await transport.probe()
            issuer.revoke_all()  # the relay now refuses the token the transport holds
            await transport.probe()

        asyncio.run(revoked_between())
    assert [ok for _, ok in relay.handler.logins] == [True, False, True]
    assert issuer.requests == 2


def test_a_relay_that_refuses_every_token_stops_with_one_line(
    tmp_path: Path, issuer: TokenIssuer, endpoint: str
) -> None:
    with OAuthRelay(issuer, "someone-else@example.org") as relay:
        transport = SMTPTransport(smtp(relay.port, command(endpoint)))
        with pytest.raises(SMTPStartError) as caught:
            asyncio.run(transport.probe())
    message = str(caught.value)
    assert "535 5.7.8" in message and "status 401" in message and "scope" in message
    assert not any(token in message for token in issuer.issued)


def test_a_failing_token_command_is_one_line_without_the_token(
    tmp_path: Path, issuer: TokenIssuer, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OAUTH_CLIENT_SECRET", "wrong")
    with OAuthRelay(issuer, USER) as relay:
        root = make_workspace(
            tmp_path / "ws",
            relay.port,
            2,
            smtp_extra=f'auth = "xoauth2"\nusername = "{USER}"\ntoken_command = {command(endpoint)!r}',
        )
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "token command" in line and "exit status 3" in line and "invalid_client" in line
    assert "Traceback" not in result.stderr and relay.handler.messages == []


@pytest.mark.parametrize(
    ("output", "said"),
    [
        (b"", "printed no token"),
        (b"{not json", "not JSON"),
        (b'{"token": "abc"}', 'no "access_token"'),
        (b'{"access_token": "abc", "expires_in": "soon"}', "expires_in"),
        (b"two words-of-secret", "not an OAuth2 access token"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unusable_token_output_is_named_without_being_shown(output: bytes, said: str) -> None:
    with pytest.raises(ValueError, match=said) as caught:
        parse_token_output(output, 0.0)
    assert b"secret" not in str(caught.value).encode()


def test_token_output_json_and_plain() -> None:
    held = parse_token_output(b'{"access_token": "ya29.a0-b_c", "expires_in": 3599}\n', 100.0)
    assert held.value == "ya29.a0-b_c" and held.expires == pytest.approx(100 + 3599 - 60)
    assert "ya29" not in repr(held)
    assert parse_token_output(b"  EwBwA8l6BAAU\n", 0.0).expires is None


def test_xoauth2_settings_are_checked(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 25, 1, smtp_extra='auth = "xoauth2"\nusername = "a@example.org"')
    with pytest.raises(ConfigError, match="needs \\[smtp\\] token_command"):
        load_settings(workspace=root)
    root = make_workspace(tmp_path / "ws2", 25, 1, smtp_extra='auth = "oauth"')
    with pytest.raises(ConfigError, match="auth must be one of password, xoauth2"):
        load_settings(workspace=root)
    missing = smtp(25, "/no/such/token-program --flag")
    with pytest.raises(ConfigError, match="cannot run '/no/such/token-program'"):
        asyncio.run(SMTPTransport(missing).probe())


class BasicAuthRefused(RecordingHandler):
    """Microsoft 365 after basic authentication is turned off for SMTP AUTH."""

    reply = ""

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return AuthResult(success=False, handled=False, message=self.reply)

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        return AuthResult(success=False, handled=False, message=self.reply)


@pytest.mark.parametrize(
    "reply",
    [
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
    ],
)
def test_a_relay_refusing_passwords_names_the_code_and_the_fix(reply: str) -> None:
    handler = BasicAuthRefused()
    handler.reply = reply
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, auth_require_tls=False)
    controller.start()
    try:
        settings = SMTPSettings(host="127.0.0.1", port=port, security="none", username=USER, password="hunter2-secret")
        with pytest.raises(SMTPStartError) as caught:
            asyncio.run(SMTPTransport(settings).probe())
    finally:
        controller.stop()
    message = str(caught.value)
    status = reply.split()[1]
    assert f"{status}: this relay refuses password logins" in message
    assert 'auth = "xoauth2"' in message and "\n" not in message and "hunter2" not in message


def test_the_token_is_not_kept_between_processes(issuer: TokenIssuer, endpoint: str) -> None:
    """Memory only: a new transport (a new run) asks the command again."""
    with OAuthRelay(issuer, USER) as relay:
        for _ in range(2):
            asyncio.run(SMTPTransport(smtp(relay.port, command(endpoint))).probe())
    assert issuer.requests == 2
