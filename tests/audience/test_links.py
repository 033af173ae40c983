"""links.py: tokens name a recipient and a list, hide the address, and refuse every forgery."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from newsletter_mailer.audience.links import TokenSigner, load_secret, unsubscribe_url
from newsletter_mailer.errors import TokenError

SIGNER = TokenSigner(b"k" * 32, "news.example.org")
ADDRESS = "ada.lovelace@example.org"


def test_round_trip_is_stable_and_hides_the_address() -> None:
    token = SIGNER.token(ADDRESS)
    assert SIGNER.verify(token) == ADDRESS
    assert SIGNER.token(ADDRESS) == token  # the same link in every issue
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ada" not in raw and b"example" not in raw and "ada" not in token.lower()
    assert SIGNER.token("bob@example.org") != token
    assert unsubscribe_url("https://x.example.org/", token) == f"https://x.example.org/unsubscribe/{token}"


def test_unicode_address_round_trips() -> None:
    assert SIGNER.verify(SIGNER.token("zoë@example.org")) == "zoë@example.org"


def test_every_flipped_bit_is_refused() -> None:
    raw = bytearray(base64.urlsafe_b64decode(SIGNER.token(ADDRESS) + "=="))
    for index in range(len(raw)):
        for bit in (0, 3, 7):
            forged = bytearray(raw)
            forged[index] ^= 1 << bit
            token = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
            with pytest.raises(TokenError):
                SIGNER.verify(token)


@pytest.mark.parametrize("cut", [1, 5, 20, 60])
def test_truncated_tokens_are_refused(cut: int) -> None:
    token = SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.verify(token[:-cut])


def test_another_key_or_another_list_is_refused() -> None:
    token = SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        TokenSigner(b"j" * 32, "news.example.org").verify(token)
    with pytest.raises(TokenError):
        TokenSigner(b"k" * 32, "other.example.org").verify(token)


@pytest.mark.parametrize("junk", ["", "!!!!", "a", "AAAA" * 20, "é", "../../etc/passwd"])
def test_garbage_is_refused(junk: str) -> None:
    with pytest.raises(TokenError):
        SIGNER.verify(junk)


def test_generated_secret_is_kept_with_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / ".newsletter"
    first = load_secret(state, env={})
    assert load_secret(state, env={}) == first and len(first) == 64
    assert stat.S_IMODE((state / "secret.key").stat().st_mode) == 0o600
    assert load_secret(state, env={"NEWSLETTER_SECRET": "from-env"}) == b"from-env"


TEST_SIGNER = TokenSigner(b"k" * 32, "news.example.org", test=True)


def _with_version(token: str, version: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[0] = version
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_a_test_copys_token_is_read_as_a_test_and_never_verifies() -> None:
    token = TEST_SIGNER.token(ADDRESS)
    assert token != SIGNER.token(ADDRESS)
    subject = SIGNER.read(token)
    assert (subject.address, subject.test) == (ADDRESS, True)
    assert SIGNER.read(SIGNER.token(ADDRESS)).test is False
    with pytest.raises(TokenError):
        SIGNER.verify(token)
    with pytest.raises(TokenError):
        TEST_SIGNER.verify(token)


def test_a_real_token_cannot_be_downgraded_nor_a_test_token_upgraded() -> None:
    real, test = SIGNER.token(ADDRESS), TEST_SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.read(_with_version(real, 2))
    with pytest.raises(TokenError):
        SIGNER.read(_with_version(test, 1))
    with pytest.raises(TokenError):
        SIGNER.read(_with_version(real, 3))


def test_a_forged_test_token_is_refused() -> None:
    forged = TokenSigner(b"j" * 32, "news.example.org", test=True).token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.read(forged)
