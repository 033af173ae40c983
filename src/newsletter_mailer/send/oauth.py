"""OAuth2 for SMTP relays that refuse passwords (Microsoft 365, Google Workspace): an access token
from the user's token command, kept in memory only, and the SASL XOAUTH2 exchange.

The token command is the user's own program (an MSAL or oauth2l call, a script that posts a
refresh grant): it prints the token, or JSON with ``access_token`` and ``expires_in``. It runs
when there is no token or the one held is about to expire, and again once when the relay refuses
a token. A token is never printed, logged, put in an error message or written to a file.

XOAUTH2 is what Google and Microsoft publish: ``AUTH XOAUTH2 base64("user=" U "\\x01auth=Bearer "
T "\\x01\\x01")``; a refused token gets a ``334`` challenge holding a base64 JSON error, which the
client answers with an empty line to get the final ``535``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field

import aiosmtplib

from ..errors import ConfigError, SMTPStartError

__all__ = [
    "BASIC_AUTH_REFUSALS",
    "AccessToken",
    "TokenSource",
    "basic_auth_refused",
    "parse_token_output",
    "xoauth2_initial_response",
    "xoauth2_login",
]

COMMAND_TIMEOUT = 60.0  # seconds for the token command (a device-code prompt is not expected here)
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 b64token: never a space or control character
# Microsoft's refusals of basic (password) authentication for SMTP AUTH.
BASIC_AUTH_REFUSALS = ("5.7.139", "5.7.30")


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires: float | None  # time.monotonic() when it runs out; None: until the relay refuses it

    def usable(self, now: float) -> bool:
        return self.expires is None or now < self.expires


def parse_token_output(output: bytes, now: float) -> AccessToken:
    """The token command's standard output: the token alone, or JSON with ``access_token`` and
    optionally ``expires_in`` (seconds). ValueError says what is wrong without showing the output."""
    try:
        text = output.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("its output is not UTF-8 text") from None
    expires: float | None = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("its output starts like JSON but is not JSON") from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise ValueError('its JSON output has no "access_token" string')
        lifetime = data.get("expires_in")
        if lifetime is not None:
            if isinstance(lifetime, bool) or not isinstance(lifetime, int | float | str):
                raise ValueError('its "expires_in" is not a number of seconds')
            try:
                seconds = float(lifetime)
            except ValueError:
                raise ValueError('its "expires_in" is not a number of seconds') from None
            # Renew a little before the end, so a token never runs out between a check and a login.
            expires = now + seconds - min(60.0, seconds / 10)
        text = token
    if not text:
        raise ValueError("it printed no token")
    if not _TOKEN.match(text):
        raise ValueError("what it printed is not an OAuth2 access token (one word of letters, digits and -._~+/=)")
    return AccessToken(text, expires)


class TokenSource:
    """Access tokens from ``[smtp] token_command``, shared by every connection of a transport."""

    def __init__(self, command: str, timeout: float = COMMAND_TIMEOUT) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"[smtp] token_command cannot be read as a command: {exc}") from None
        if not self.argv:
            raise ConfigError('[smtp] auth = "xoauth2" needs [smtp] token_command, the command that prints a token')
        if shutil.which(self.argv[0]) is None:  # said before any connection is opened
            raise ConfigError(f"[smtp] token_command: cannot run {self.argv[0]!r}: no such program")
        self.timeout = timeout
        self.runs = 0  # how many times the command ran (tests and the log count it)
        self._token: AccessToken | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def token(self, *, refused: str = "") -> str:
        """A usable token: the one held, or a new one from the command. ``refused``: the token the
        relay just refused, so a new one is fetched unless another connection already did."""
        async with self._loop_lock():
            held = self._token
            if held is None or not held.usable(time.monotonic()) or (refused and held.value == refused):
                held = self._token = await self._run()
            return held.value

    async def _run(self) -> AccessToken:
        name = self.argv[0]
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ConfigError(f"[smtp] token_command: cannot run {name!r}: {exc.strerror or exc}") from None
        self.runs += 1
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SMTPStartError(f"the token command {name!r} did not finish within {self.timeout:g} seconds") from None
        if process.returncode != 0:
            said = _first_line(err)
            raise SMTPStartError(
                f"the token command {name!r} failed (exit status {process.returncode})" + (f": {said}" if said else "")
            )
        try:
            return parse_token_output(out, time.monotonic())
        except ValueError as exc:
            raise SMTPStartError(f"the token command {name!r} gave no usable token: {exc}") from None


def _first_line(data: bytes) -> str:
    """The first non-empty line of a command's error output, printable and bounded."""
    for line in data.decode("utf-8", "replace").splitlines():
        line = re.sub(r"[\x00-\x1f\x7f]", "?", line).strip()
        if line:
            return line[:200]
    return ""


def xoauth2_initial_response(username: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial client response, base64-encoded."""
    return base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode())


async def xoauth2_login(client: aiosmtplib.SMTP, username: str, token: str) -> None:
    """AUTH XOAUTH2 on a connected client; SMTPAuthenticationError with the relay's final reply
    (and the JSON error of its 334 challenge, decoded) if refused."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    if "xoauth2" not in client.server_auth_methods:
        offered = " ".join(client.server_auth_methods) or "none"
        raise aiosmtplib.SMTPAuthenticationError(504, f"the relay does not offer AUTH XOAUTH2 (it offers: {offered})")
    response = await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2_initial_response(username, token))
    detail = ""
    if response.code == 334:
        detail = _challenge_error(response.message)
        response = await client.execute_command(b"")  # the empty answer the error challenge asks for
    if response.code != 235:
        message = response.message + (f" ({detail})" if detail else "")
        raise aiosmtplib.SMTPAuthenticationError(response.code, message)


def _challenge_error(challenge: str) -> str:
    """The relay's reason from a XOAUTH2 error challenge (base64 JSON: status, schemes, scope)."""
    try:
        data = json.loads(base64.b64decode(challenge.strip(), validate=True))
    except (ValueError, TypeError):
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [f"{key} {data[key]}" for key in ("status", "scope") if isinstance(data.get(key), str | int)]
    return re.sub(r"[\x00-\x1f\x7f]", "?", ", ".join(parts))[:200]


def basic_auth_refused(code: int, message: str) -> str:
    """The Microsoft refusal code when the relay refuses basic (password) authentication, else ''."""
    return next((status for status in BASIC_AUTH_REFUSALS if status in message), "") if code >= 500 else ""
